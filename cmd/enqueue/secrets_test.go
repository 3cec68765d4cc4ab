package main_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// A Redis that refuses enqueue's credentials fails the command with exit 1,
// naming REDIS_URL and not printing its password. (The malformed URLs of
// every command are probed in cmd/worker's TestMalformedURLsNeverPrintTheirSecret.)
func TestRefusedRedisNamesTheVariableWithoutItsPassword(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u, err := url.Parse(testredis.URL())
	require.NoError(t, err)
	u.User = url.UserPassword("tm_no_such_user", "S3cretPW")
	b.env = append(b.env, "REDIS_URL="+u.String())
	code, stdout, stderr := b.run(t, "coupon", "load-redis", "--code", "NOPE")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "enqueue coupon load-redis: REDIS_URL: connect: WRONGPASS")
	require.NotContains(t, stdout+stderr, "S3cret")
}
