package dbpool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/dbpool"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testpgbouncer"
)

func TestDirectSetsTheTimeoutsAtStartup(t *testing.T) {
	t.Parallel()
	pc, err := dbpool.Config(testkit.DatabaseURL(t), config.PoolerNone, config.DefaultWorkerSession)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, dbpool.CheckSession(context.Background(), pool, config.DefaultWorkerSession))
}

func TestUnknownPoolerRefused(t *testing.T) {
	t.Parallel()
	_, err := dbpool.Config("postgres://u@h/db", "session", config.DefaultWorkerSession)
	require.EqualError(t, err, `dbpool: unknown pooler "session" (want none or transaction)`)
}

// Through PgBouncer in transaction mode a pool sends no named statement and
// no startup timeouts; the timeouts are the database's, and CheckSession
// refuses a database that lacks them, saying what to set.
func TestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bouncer := testpgbouncer.Start(t, testkit.AdminURL())
	open := func(direct string) *pgxpool.Pool {
		pc, err := dbpool.Config(bouncer.URL(direct)+"&lock_timeout=1", config.PoolerTransaction, config.DefaultWorkerSession)
		require.NoError(t, err)
		require.Equal(t, pgx.QueryExecModeExec, pc.ConnConfig.DefaultQueryExecMode)
		require.NotContains(t, pc.ConnConfig.RuntimeParams, "lock_timeout", "PgBouncer refuses startup timeouts")
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool
	}

	bare := open(testkit.DatabaseURL(t))
	err := dbpool.CheckSession(ctx, bare, config.DefaultWorkerSession)
	var mismatch *dbpool.SessionMismatchError
	require.True(t, errors.As(err, &mismatch), "%v", err)
	require.Equal(t, "idle_in_transaction_session_timeout", mismatch.Name)
	require.Contains(t, err.Error(), "the server's idle_in_transaction_session_timeout is 0 (no limit), DB_IDLE_TX_TIMEOUT requires 5s: set it on the role, ALTER ROLE \"postgres\" IN DATABASE")
	require.Contains(t, err.Error(), "SET idle_in_transaction_session_timeout = '5000ms'")

	direct := testkit.DatabaseURL(t)
	testpgbouncer.SetSession(t, direct, config.DefaultWorkerSession)
	pool := open(direct)
	require.NoError(t, dbpool.CheckSession(ctx, pool, config.DefaultWorkerSession))
	other := config.DefaultWorkerSession
	other.Statement = 2 * time.Minute
	require.ErrorContains(t, dbpool.CheckSession(ctx, pool, other), "the server's statement_timeout is 1m0s, DB_STATEMENT_TIMEOUT requires 2m0s")

	// Many statements over the pool's connections, more than the server
	// connections behind them: no named statement collides.
	for i := range 50 {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT $1::int + 1`, i).Scan(&n))
		require.Equal(t, i+1, n)
	}
}
