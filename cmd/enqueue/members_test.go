package main_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/internal/harness/testbin"
)

// member-token signs what an identity provider sharing MEMBER_JWT_SECRET
// would: tokens the worker's verifier accepts, for the members named.
func TestMemberToken(t *testing.T) {
	t.Parallel()
	bin := testbin.Build(t, "enqueue")
	secret := "enqueue-member-secret-of-32-bytes-or-more"
	env := []string{"MEMBER_JWT_SECRET=" + secret, "MEMBER_JWT_ISSUER=https://id.example", "MEMBER_JWT_AUDIENCE=tidemark"}
	code, stdout, stderr := testbin.Run(t, bin, env, "member-token", "--member", "7,8", "--ttl", "10m")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 2)
	m, err := auth.NewMembers(context.Background(), auth.MemberOpts{Secret: []byte(secret), Issuer: "https://id.example", Audience: "tidemark"})
	require.NoError(t, err)
	for i, want := range []int64{7, 8} {
		_, tok, ok := strings.Cut(lines[i], " ")
		require.True(t, ok, lines[i])
		got, err := m.Verify(context.Background(), tok)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	require.NotContains(t, stdout+stderr, secret)

	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"member-token", "--member", "1"}, "MEMBER_JWT_SECRET is not set"},
		{env, []string{"member-token"}, "--member is required"},
		{env, []string{"member-token", "--member", "0"}, `"0" is not a positive integer id`},
		{env, []string{"member-token", "--member", "1", "--ttl", "48h"}, "--ttl: want a duration from 1s to 24h"},
		{[]string{"MEMBER_JWT_SECRET=short"}, []string{"member-token", "--member", "1"}, "MEMBER_JWT_SECRET: is 5 bytes"},
	} {
		code, stdout, stderr := testbin.Run(t, bin, c.env, c.args...)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, c.want)
		require.Empty(t, stdout)
	}
}
