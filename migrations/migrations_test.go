package migrations_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/migrations"
)

// A database URL Up refuses is named in the error without its password,
// whether it is a URL, a URL too malformed to parse, or a keyword/value
// connection string.
func TestUpRefusalHidesThePassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"mysql://app:s3cret@db:3306/tidemark", `"mysql://app:xxxxx@db:3306/tidemark"`},
		{"mysql://app@db/tidemark", `"mysql://app@db/tidemark"`},
		{"postgres://app:s3cret%zz@db/tidemark", `"postgres://…@db/tidemark"`},
		{"host=db user=app password=s3cret dbname=tidemark", `"host=db user=app password=xxxxx dbname=tidemark"`},
		{"host=db password = 's3 cret' dbname=tidemark", `"host=db password = xxxxx dbname=tidemark"`},
	} {
		err := migrations.Up(tc.url)
		require.ErrorContains(t, err, "database URL must be postgres://…, got "+tc.want, tc.url)
		require.NotContains(t, err.Error(), "s3", tc.url)
	}
}
