package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/store"
)

// loadOperators builds the operators from OPERATORS_FILE and ADMIN_TOKEN
// (the operator admin). Its errors are configuration errors naming the
// variable, and never quote a token or a hash.
func loadOperators(c config.Callers) (*auth.Operators, error) {
	ops := &auth.Operators{}
	if c.OperatorsFile != "" {
		f, err := os.Open(c.OperatorsFile)
		if err != nil {
			return nil, fmt.Errorf("OPERATORS_FILE: %w", err)
		}
		defer f.Close()
		ops, err = auth.ParseOperators(f)
		if err != nil {
			return nil, fmt.Errorf("OPERATORS_FILE %s: %w", c.OperatorsFile, err)
		}
	}
	if c.AdminToken != "" {
		if err := ops.AddToken(auth.AdminName, auth.RoleOperator, c.AdminToken); err != nil {
			return nil, fmt.Errorf("ADMIN_TOKEN: %w", err)
		}
	}
	return ops, nil
}

// newCallers builds who may call the listener. A key set (MEMBER_JWKS_URL)
// is fetched in the background until ctx is done.
func newCallers(ctx context.Context, c config.Callers, ops *auth.Operators, st *store.Store, logger *slog.Logger) (*httpapi.Callers, error) {
	callers := &httpapi.Callers{Operators: ops, MetricsToken: c.MetricsToken,
		Addr: &httpapi.ClientAddr{Trusted: c.TrustedProxies}, Actions: st, Logger: logger}
	if c.MemberSecret == "" && c.MemberJWKSURL == "" {
		logger.Warn("member endpoints answer 503: set MEMBER_JWT_SECRET or MEMBER_JWKS_URL to verify members' tokens")
		return callers, nil
	}
	m, err := auth.NewMembers(ctx, auth.MemberOpts{Secret: []byte(c.MemberSecret), JWKSURL: c.MemberJWKSURL,
		Issuer: c.MemberIssuer, Audience: c.MemberAudience, Logger: logger})
	if err != nil {
		return nil, err
	}
	callers.Members = m
	return callers, nil
}

// memberAuth says how members' tokens are verified, for the start-up line.
func memberAuth(c config.Callers) string {
	switch {
	case c.MemberSecret != "":
		return "HS256 (MEMBER_JWT_SECRET)"
	case c.MemberJWKSURL != "":
		return "RS256/ES256 (MEMBER_JWKS_URL)"
	}
	return "off (503)"
}
