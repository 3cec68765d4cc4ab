package migrations_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/migrations"
)

// withUser returns base with user and password as its credentials.
func withUser(base, user, password string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// A database URL Up refuses is named in the error without its password,
// whether it is a URL, a URL too malformed to parse, or a keyword/value
// connection string; so is one the server refuses.
func TestUpRefusalHidesThePassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"mysql://app:s3cret@db:3306/tidemark", `database URL must be postgres://…, got "mysql://app:xxxxx@db:3306/tidemark"`},
		{"mysql://app@db/tidemark", `database URL must be postgres://…, got "mysql://app@db/tidemark"`},
		{"postgres://app:s3cret%zz@db/tidemark", `database URL: not a valid URL (a "%" not followed by two hex digits`},
		{"host=db user=app password=s3cret dbname=tidemark", `database URL must be postgres://…, got "<unparseable URL>"`},
		{"host=db password = 's3 cret' dbname=tidemark", `database URL must be postgres://…, got "<unparseable URL>"`},
		{withUser(testkit.AdminURL(), "tm_no_such_role", "s3cret"), `role "tm_no_such_role" does not exist`},
	} {
		err := migrations.Up(tc.url)
		require.ErrorContains(t, err, tc.want, tc.url)
		require.NotContains(t, err.Error(), "s3", tc.url)
	}
}
