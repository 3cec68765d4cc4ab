package config_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/config"
)

func TestCallersDefaultsAndValues(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, config.Callers{CouponRate: config.Rate{N: 10, Period: time.Minute}, HTTPMaxConns: 2048}, cfg.Callers)

	cfg, err = config.FromEnv(env(map[string]string{
		"ADMIN_TOKEN": "0123456789abcdef", "OPERATORS_FILE": " /etc/tidemark/operators ",
		"MEMBER_JWKS_URL": "https://id.example/.well-known/jwks.json", "MEMBER_JWT_ISSUER": "https://id.example",
		"MEMBER_JWT_AUDIENCE": "tidemark", "METRICS_TOKEN": "metrics-0123456789",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,2001:db8::/32", "COUPON_RATE_LIMIT": "3/s", "HTTP_MAX_CONNS": "100",
	}))
	require.NoError(t, err)
	require.Equal(t, config.Callers{AdminToken: "0123456789abcdef", OperatorsFile: "/etc/tidemark/operators",
		MemberJWKSURL: "https://id.example/.well-known/jwks.json", MemberIssuer: "https://id.example", MemberAudience: "tidemark",
		MetricsToken: "metrics-0123456789",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
			netip.MustParsePrefix("2001:db8::/32")},
		CouponRate: config.Rate{N: 3, Period: time.Second}, HTTPMaxConns: 100}, cfg.Callers)
	require.Equal(t, "3/s", cfg.Callers.CouponRate.String())
}

// A secret given in a bad shape stops the process, naming the variable and
// never the secret.
func TestCallersRefusedNamingTheVariableNotTheSecret(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env    map[string]string
		want   string
		secret string
	}{
		{map[string]string{"ADMIN_TOKEN": " "}, "ADMIN_TOKEN: is only spaces", ""},
		{map[string]string{"ADMIN_TOKEN": "   \t  "}, "ADMIN_TOKEN: is only spaces", ""},
		{map[string]string{"ADMIN_TOKEN": "hunter2-hunter"}, "ADMIN_TOKEN: is 14 bytes; want a random token of at least 16 bytes", "hunter2-hunter"},
		{map[string]string{"METRICS_TOKEN": "s3cr3t"}, "METRICS_TOKEN: is 6 bytes", "s3cr3t"},
		{map[string]string{"MEMBER_JWT_SECRET": "a-secret-of-thirty-one-bytes-xx"}, "MEMBER_JWT_SECRET: is 31 bytes; want a random secret of at least 32 bytes", "a-secret-of-thirty-one-bytes-xx"},
		{map[string]string{"MEMBER_JWT_SECRET": strings.Repeat(" ", 40)}, "MEMBER_JWT_SECRET: is only spaces", ""},
		{map[string]string{"MEMBER_JWT_SECRET": strings.Repeat("k", 40), "MEMBER_JWKS_URL": "https://id.example/jwks"},
			"MEMBER_JWT_SECRET and MEMBER_JWKS_URL: set one of them", strings.Repeat("k", 40)},
		{map[string]string{"MEMBER_JWKS_URL": "ftp://u:pa55w0rd@id.example/jwks"}, "MEMBER_JWKS_URL: want an https://host/path URL", "pa55w0rd"},
		{map[string]string{"MEMBER_JWKS_URL": "https://u:pa%ss@id.example/jwks"}, "MEMBER_JWKS_URL: want an https://host/path URL", "pa%ss"},
		{map[string]string{"MEMBER_JWKS_URL": "http://id.example/jwks"}, "MEMBER_JWKS_URL: want https:// (http:// only on this machine's loopback)", ""},
		{map[string]string{"MEMBER_JWT_ISSUER": "https://id.example"}, "MEMBER_JWT_ISSUER/MEMBER_JWT_AUDIENCE: set without", ""},
		{map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, `TRUSTED_PROXIES: want addresses or CIDR prefixes`, ""},
		{map[string]string{"COUPON_RATE_LIMIT": "10"}, `COUPON_RATE_LIMIT: want N/s, N/m or N/h`, ""},
		{map[string]string{"COUPON_RATE_LIMIT": "0/m"}, `COUPON_RATE_LIMIT: want N/s, N/m or N/h`, ""},
		{map[string]string{"COUPON_RATE_LIMIT": "5/d"}, `COUPON_RATE_LIMIT: want N/s, N/m or N/h`, ""},
		{map[string]string{"HTTP_MAX_CONNS": "3"}, `HTTP_MAX_CONNS: want 16..1000000`, ""},
	} {
		_, err := config.FromEnv(env(c.env))
		require.ErrorContains(t, err, c.want, c.env)
		if c.secret != "" {
			require.NotContains(t, err.Error(), c.secret)
		}
	}
}
