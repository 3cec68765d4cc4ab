package main_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// secret is the password (or query value) every probe hides in a URL; it
// must be printed nowhere.
const secret = "S3cretPW"

// withCredentials returns base with password and, unless empty, user and
// path in place of its own.
func withCredentials(t *testing.T, base, user, password, path string) string {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	if user == "" {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, password)
	if path != "" {
		u.Path = path
	}
	return u.String()
}

// Every malformed or refused URL, given to worker, worker migrate and
// enqueue status: a configuration error exits 2, a failure to connect 1;
// either names the variable, and the secret in the URL is printed nowhere.
func TestMalformedURLsNeverPrintTheirSecret(t *testing.T) {
	t.Parallel()
	admin := testkit.AdminURL()
	probes := []struct {
		name, variable, value string
		code                  int
		want                  string
	}{
		{"scheme typo", "DATABASE_URL", "postgress://u:" + secret + "@host/db", 2,
			`DATABASE_URL: want postgres://…, got scheme "postgress" in postgress://u:xxxxx@host/db`},
		{"bare percent", "DATABASE_URL", "postgres://u:S3cret%PW@host/db", 2,
			`DATABASE_URL: not a valid URL (a "%" not followed by two hex digits; write a literal % as %25)`},
		{"slash in password", "DATABASE_URL", "postgres://u:S3cret/PW@host/db", 2,
			`DATABASE_URL: not a valid URL (invalid port after host)`},
		{"slash in numeric password", "DATABASE_URL", "postgres://u:1234/" + secret + "@host/db", 2,
			`DATABASE_URL: an "@" after the host`},
		{"space in password", "DATABASE_URL", "postgres://u:S3cret PW@host/db", 2,
			`DATABASE_URL: not a valid URL (invalid userinfo)`},
		{"key/value string", "DATABASE_URL", "host=127.0.0.1 password=" + secret, 2,
			`DATABASE_URL: want postgres://…, got no scheme`},
		{"opaque", "DATABASE_URL", "postgres:u:" + secret + "@host/db", 2,
			`DATABASE_URL: want postgres://…, got no // after "postgres:"`},
		{"pgx refuses a parameter", "DATABASE_URL", "postgres://u:" + secret + "@127.0.0.1:5432/db?sslmode=bogus&sslpassword=" + secret, 2,
			"DATABASE_URL: cannot parse `postgres://u:xxxxx@127.0.0.1:5432/db?sslmode=xxxxx&sslpassword=xxxxx`"},
		{"missing host", "DATABASE_URL", "postgres://u:" + secret + "@/db?connect_timeout=5", 1, "DATABASE_URL: "},
		{"unknown host", "DATABASE_URL", "postgres://u:" + secret + "@tm-no-such-host.invalid/db?connect_timeout=5", 1,
			"DATABASE_URL: "},
		{"unknown role", "DATABASE_URL", withCredentials(t, admin, "tm_no_such_role", secret, ""), 1, "tm_no_such_role"},
		{"unknown database", "DATABASE_URL", withCredentials(t, admin, "", secret, "/tm_no_such_db"), 1, "tm_no_such_db"},
		{"redis bare percent", "REDIS_URL", "redis://:S3cret%PW@127.0.0.1:6379/0", 2, `REDIS_URL: not a valid URL`},
		{"redis scheme", "REDIS_URL", "redis+tls://:" + secret + "@host:6379/0", 2,
			`REDIS_URL: want redis://…, got scheme "redis+tls" in redis+tls://:xxxxx@host:6379/0`},
		{"redis refuses the path", "REDIS_URL", "redis://:" + secret + "@127.0.0.1:6379/abc", 2,
			`REDIS_URL: redis: invalid database number: "abc"`},
		{"order API scheme", "ORDER_API_URL", "ftp://u:" + secret + "@partner/?key=" + secret, 2,
			`ORDER_API_URL: want http(s)://host:port, got scheme "ftp" in ftp://u:xxxxx@partner/?key=xxxxx`},
		{"order API no host", "ORDER_API_URL", "http:///orders?api_key=" + secret, 2,
			`ORDER_API_URL: want http(s)://host:port, got no host in http:///orders?api_key=xxxxx`},
	}
	worker, enqueue := testbin.Build(t, "worker"), testbin.Build(t, "enqueue")
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			env := []string{p.variable + "=" + p.value, "HTTP_ADDR=127.0.0.1:0", "PERIODIC_JOBS=false"}
			for _, args := range [][]string{{worker}, {worker, "migrate"}, {enqueue, "status"}} {
				code, stdout, stderr := testbin.Run(t, args[0], env, args[1:]...)
				cmd := strings.Join(append([]string{args[0][strings.LastIndex(args[0], "/")+1:]}, args[1:]...), " ")
				require.Equal(t, p.code, code, "%s: %s", cmd, stderr)
				require.Contains(t, stderr, p.variable, cmd)
				require.Contains(t, stderr, p.want, cmd)
				require.Equal(t, 1, strings.Count(stderr, "\n"), "%s: one line: %q", cmd, stderr)
				require.NotContains(t, stdout+stderr, "S3cret", cmd)
			}
		})
	}
}

// A Redis that refuses the worker's credentials is logged as a warning,
// with REDIS_URL redacted, and the worker runs on without coupons.
func TestRefusedRedisIsLoggedWithoutItsPassword(t *testing.T) {
	t.Parallel()
	redisURL := withCredentials(t, testredis.URL(), "tm_no_such_user", secret, "")
	w := testbin.StartWorker(t, "DATABASE_URL="+testkit.DatabaseURL(t), "REDIS_URL="+redisURL, "PERIODIC_JOBS=false")
	require.NoError(t, w.Stop(30*time.Second))
	out := w.Output()
	require.Contains(t, out, "redis does not answer")
	require.Contains(t, out, "REDIS_URL=redis://tm_no_such_user:xxxxx@")
	require.NotContains(t, out, "S3cret")
}
