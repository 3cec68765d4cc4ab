package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/internal/cliflag"
)

// maxMemberTokenTTL bounds a token this command signs: it stands in for the
// identity provider on a developer's machine, not for a member's session.
const maxMemberTokenTTL = 24 * time.Hour

// cmdMemberToken signs, for each member named, the token an identity
// provider sharing MEMBER_JWT_SECRET would issue, one "member token" line
// each, with MEMBER_JWT_ISSUER and MEMBER_JWT_AUDIENCE when set.
func cmdMemberToken(_ context.Context, e *env, args []string) error {
	fs := e.newFlagSet("member-token")
	members := fs.String("member", "", "member ids, comma-separated (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the tokens are valid (at most 24h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *members == "" {
		return cliflag.Usagef("--member is required")
	}
	ids, err := cliflag.IDs("member", *members)
	if err != nil {
		return err
	}
	if *ttl <= 0 || *ttl > maxMemberTokenTTL {
		return cliflag.Usagef("--ttl: want a duration from 1s to 24h, got %s", *ttl)
	}
	c := e.cfg.Callers
	if c.MemberSecret == "" {
		return cliflag.Usagef("MEMBER_JWT_SECRET is not set: this command signs with it (members of an identity provider with MEMBER_JWKS_URL get their tokens from it)")
	}
	now := time.Now()
	for _, id := range ids {
		tok, err := auth.SignMember([]byte(c.MemberSecret), id, *ttl, c.MemberIssuer, c.MemberAudience, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d %s\n", id, tok)
	}
	return nil
}
