package testkit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/migrations"
)

// AdminURL is the URL of the server's maintenance database that tests connect
// to in order to create and drop their own databases.
func AdminURL() string {
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// DatabaseURL creates an empty-of-data database at the current schema for
// this test, drops it when the test ends, and returns its URL.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	dbURL, drop, err := NewDatabase()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Logf("testkit: %v", err)
		}
	})
	return dbURL
}

// NewDatabase is DatabaseURL for code that has no testing.TB (an Example):
// the caller drops the database with drop.
func NewDatabase() (dbURL string, drop func() error, err error) {
	ctx := context.Background()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
	if templateErr != nil {
		return "", nil, fmt.Errorf("template: %w", templateErr)
	}
	name := "tm_test_" + randomHex(6)
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", AdminURL(), err)
	}
	defer admin.Close(ctx)
	// Several CREATE DATABASE … TEMPLATE at once fail with "source database is
	// being accessed by other users"; serialise them across processes.
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(7250001)`); err != nil {
		return "", nil, fmt.Errorf("lock: %w", err)
	}
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, templateName))
	_, _ = admin.Exec(ctx, `SELECT pg_advisory_unlock(7250001)`)
	if err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop = func() error {
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		return nil
	}
	return WithDatabase(AdminURL(), name), drop, nil
}

// EmptyDatabaseURL creates a database with no schema at all (for a
// migration to start from nothing), dropped when the test ends, and returns
// its URL.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	defer c.Close(ctx)
	name := "tm_test_empty_" + randomHex(6)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, AdminURL())
		if err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	return WithDatabase(AdminURL(), name)
}

// Pool returns a pool on a new test database (see DatabaseURL) and the
// database's URL; the pool is closed when the test ends.
func Pool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dbURL := DatabaseURL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("testkit: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, dbURL
}

// WithDatabase returns base with its database name replaced by name.
func WithDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("testkit: bad URL %q: %v", base, err))
	}
	u.Path = "/" + name
	return u.String()
}

// ensureTemplate creates (once per schema version, across processes) a database
// migrated to the current schema, to clone test databases from.
func ensureTemplate(ctx context.Context) (string, error) {
	name := "tm_tmpl_" + schemaHash()
	c, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", fmt.Errorf("connect %s: %w (is Postgres running? `make test` starts it)", AdminURL(), err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock(7250000)`); err != nil {
		return "", err
	}
	defer c.Exec(ctx, `SELECT pg_advisory_unlock(7250000)`) //nolint:errcheck
	var ready bool
	err = c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)`, name).Scan(&ready)
	if err != nil {
		return "", err
	}
	if ready {
		return name, nil
	}
	if _, err := c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
		return "", err
	}
	if _, err := c.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, name)); err != nil {
		return "", err
	}
	if err := migrations.Up(WithDatabase(AdminURL(), name)); err != nil {
		return "", err
	}
	// Let the migration's connections go before the database becomes a
	// template: CREATE DATABASE … TEMPLATE refuses a template in use.
	gone, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = Poll(gone, PollInterval, func() (bool, error) {
		var n int
		err := c.QueryRow(gone, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, name).Scan(&n)
		return n == 0, err
	})
	if err != nil {
		return "", fmt.Errorf("the migration's connections to %s: %w", name, err)
	}
	if _, err := c.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s WITH IS_TEMPLATE true`, name)); err != nil {
		return "", err
	}
	return name, nil
}

// schemaHash names the template after the embedded migrations' content, so a
// schema change makes a new template instead of reusing a stale one.
func schemaHash() string {
	h := sha256.New()
	err := fs.WalkDir(migrations.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.Files, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Count runs a query that returns one number (a count) on pool.
func Count(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		tb.Fatalf("testkit: %s: %v", sql, err)
	}
	return n
}
