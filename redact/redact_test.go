package redact_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{"postgres://u:S3cretPW@host:5432/db", "postgres://u:xxxxx@host:5432/db"},
		{"postgres://u@host/db", "postgres://u@host/db"},
		{"postgress://u:S3cretPW@host/db", "postgress://u:xxxxx@host/db"},
		{"postgres://u:S3cretPW@host/db?sslmode=disable&password=S3cretPW", "postgres://u:xxxxx@host/db?sslmode=xxxxx&password=xxxxx"},
		{"https://partner.example/orders?api_key=S3cretPW&x", "https://partner.example/orders?api_key=xxxxx&xxxxx"},
		{"https://partner.example/orders?", "https://partner.example/orders?"},
		{"https://파트너.example/주문?q=값#", "https://파트너.example/주문?q=xxxxx#"},
		{"https://partner.example/cb#access_token=S3cretPW", "https://partner.example/cb#xxxxx"},
		{"redis://:S3cretPW@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"postgres://u:p%40ss@host/db", "postgres://u:xxxxx@host/db"},
		{"postgres:///db?host=/tmp", "postgres:///db?host=xxxxx"},
		// Refused by url.Parse: nothing of it is shown.
		{"postgres://u:pa%ss@host/db", redact.Unparseable},
		{"postgres://u:pa ss@host/db", redact.Unparseable},
		{"postgres://u:S3cret/PW@host/db", redact.Unparseable},
		{"postgres://u:S3cret#PW@host/db", redact.Unparseable},
		// Parsed, but a password cut by an unescaped "/", "?" or "#".
		{"postgres://u:1234/S3cretPW@host/db", redact.Unparseable},
		{"postgres://u:1234?S3cretPW@host/db", redact.Unparseable},
		{"postgres://u:1234#S3cretPW@host/db", redact.Unparseable},
		{"a://postgres://u:S3cretPW@host/db", redact.Unparseable},
		// Not scheme://: a key/value string, an opaque URL, no scheme.
		{"host=db password=S3cretPW", redact.Unparseable},
		{"postgres:u:S3cretPW@host", redact.Unparseable},
		{"u:S3cretPW@host/db", redact.Unparseable},
		{"//u:S3cretPW@host/db", redact.Unparseable},
		{"", redact.Unparseable},
	} {
		got := redact.URL(tc.raw)
		require.Equal(t, tc.want, got, tc.raw)
		require.NotContains(t, got, "S3cret", tc.raw)
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"no URL here: role \"u\" does not exist", "no URL here: role \"u\" does not exist"},
		{`Post "http://u:S3cretPW@partner:8090/orders?key=S3cretPW": dial tcp: connection refused`,
			`Post "http://u:xxxxx@partner:8090/orders?key=xxxxx": dial tcp: connection refused`},
		{"cannot parse `postgres://u:S3cretPW@host/db`: bad", "cannot parse `postgres://u:xxxxx@host/db`: bad"},
		{"DATABASE_URL=postgres://u:S3cretPW@host/db.", "DATABASE_URL=postgres://u:xxxxx@host/db."},
		{"(see <https://u:S3cretPW@h/x>), then redis://:S3cretPW@r:6379/0, twice",
			"(see <https://u:xxxxx@h/x>), then redis://:xxxxx@r:6379/0, twice"},
		{"got 'postgres://u:S3cretPW@host/db'", "got 'postgres://u:xxxxx@host/db'"},
		{"parse \"postgres://u:pa%ss@host/db\": invalid URL escape \"%ss\"",
			"parse \"" + redact.Unparseable + "\": invalid URL escape \"%ss\""},
		{"url postgres://u:pa%S3cretPW@host/db refused", "url " + redact.Unparseable + " refused"},
		{"1postgres://u:S3cretPW@h", "1postgres://u:xxxxx@h"},
		{"POSTGRES://u:S3cretPW@h", "POSTGRES://u:xxxxx@h"},
		{"DATABASE_URL: want postgres://…, got scheme \"x\"", "DATABASE_URL: want postgres://…, got scheme \"x\""},
		{"://u:S3cretPW@h", redact.Unparseable},
		{"a://b://u:S3cretPW@h", redact.Unparseable},
		{"line one postgres://u:S3cretPW@h\nline two", "line one postgres://u:xxxxx@h\nline two"},
		{"host=db user=app password=S3cretPW dbname=x", "host=db user=app password=xxxxx dbname=x"},
		{"host=db password = 'S3 cretPW' dbname=x", "host=db password = xxxxx dbname=x"},
		{"PGPASSWORD=S3cretPW psql", "PGPASSWORD=xxxxx psql"},
		{"password=postgres://u:S3cretPW@h", "password=xxxxx"},
		{"password=1x://S3cretPW and more", "password=xxxxx and more"},
		{"password= 'x://S3cret PW' and more", "password= xxxxx and more"},
		{"a sslpassword=S3cretPW b", "a sslpassword=xxxxx b"},
		{"cannot parse `postgres://u:xxxxx@h/db?sslmode=bogus&sslpassword=S3cretPW`: failed",
			"cannot parse `postgres://u:xxxxx@h/db?sslmode=xxxxx&sslpassword=xxxxx`: failed"},
		{"want http(s)://host:port, got x", "want http(s)://host:port, got x"},
		{"(://u:S3cretPW@h)", "(" + redact.Unparseable + ")"},
		{"(://h/?k=S3cretPW)", "(" + redact.Unparseable + ")"},
		{"password authentication failed for user \"u\"", "password authentication failed for user \"u\""},
	} {
		got := redact.Text(tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.NotContains(t, got, "S3cret", tc.in)
		require.Equal(t, got, redact.Text(got), "Text is idempotent: %s", tc.in)
	}
}

// ParseURL's error says what is wrong without any byte of the URL.
func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{"postgres://u:pa%ss@host/db", `not a valid URL (a "%" not followed by two hex digits; write a literal % as %25)`},
		{"postgres://u:ss/pa@host/db", "not a valid URL (invalid port after host)"},
		{"postgres://u:pa ss@host/db", "not a valid URL (invalid userinfo)"},
		{"postgres://ho\x7fst/db", "not a valid URL (invalid control character in URL)"},
		{"://ss", "not a valid URL (missing protocol scheme)"},
	} {
		_, err := redact.ParseURL(tc.raw)
		require.EqualError(t, err, tc.want, tc.raw)
	}
	u, err := redact.ParseURL("postgres://u:pw@host/db")
	require.NoError(t, err)
	require.Equal(t, "host", u.Host)
}

// Error masks the message and keeps the chain.
func TestError(t *testing.T) {
	t.Parallel()
	require.NoError(t, redact.Error(nil))
	inner := &url.Error{Op: "Post", URL: "http://partner/orders?key=S3cretPW", Err: errors.New("connection refused")}
	err := redact.Error(fmt.Errorf("orderapi: create: %w", inner))
	require.EqualError(t, err, `orderapi: create: Post "http://partner/orders?key=xxxxx": connection refused`)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	require.True(t, strings.HasSuffix(ue.URL, "S3cretPW"), "the chain is the original one")
}

// An "@" written escaped in a path is no sign of a cut password.
func TestURLEscapedAtInPath(t *testing.T) {
	t.Parallel()
	require.Equal(t, "postgres://u:xxxxx@host/my%40db", redact.URL("postgres://u:pw@host/my%40db"))
}

// A multi-line message is one line, its secrets redacted.
func TestLine(t *testing.T) {
	t.Parallel()
	got := redact.Line("connect postgres://app:s3cret@db:5432/x:\n  refused\tat once\n")
	require.Equal(t, redact.Text("connect postgres://app:s3cret@db:5432/x: refused at once"), got)
	require.NotContains(t, got, "s3cret")
}
