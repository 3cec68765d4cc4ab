// Package testdb gives a test a Postgres database of its own.
//
// Deprecated: use package testkit, which gives the database together with the
// test logger, the time zone and waits with a deadline.
package testdb

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/internal/testkit"
)

// Pool returns a pool on a new test database and its URL.
//
// Deprecated: use testkit.Pool.
func Pool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return testkit.Pool(t)
}
