package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/store"
)

// analyzed is what pg_stat_user_tables says of a table's statistics.
type analyzed struct {
	Count         int64
	Last          *time.Time
	ModsSince     int64
	ReltuplesSeen float64
}

func (b *testBundle) analyzed(t *testing.T, table string) analyzed {
	t.Helper()
	var a analyzed
	require.NoError(t, b.pool.QueryRow(b.ctx, `
		SELECT s.analyze_count, s.last_analyze, s.n_mod_since_analyze, c.reltuples
		FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = $1`, table).
		Scan(&a.Count, &a.Last, &a.ModsSince, &a.ReltuplesSeen))
	return a
}

// sessions inserts `each` perform rows for each of `users` new users from
// firstUser on, and has the inserting backend report them to the statistics
// before it answers (backends report at most once a second otherwise).
func (b *testBundle) sessions(t *testing.T, firstUser int64, users, each int) {
	t.Helper()
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(b.ctx, `
		WITH u AS (INSERT INTO therapy_user (id, status)
		           SELECT g, 'ACTIVE' FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS g RETURNING id)
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		SELECT u.id, $4::timestamptz + make_interval(mins => i), 600, true FROM u, generate_series(1, $3::int) AS i`,
		firstUser, users, each, kst(2026, 11, 2, 9, 0))
	require.NoError(t, err)
	_, err = conn.Exec(b.ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
}

func TestAnalyzeIfStaleAnalysesATableWithManyFreshChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sessions(t, 1, 200, 25) // 5,000 rows, never analysed
	require.Nil(t, b.analyzed(t, store.TableTherapyPerform).Last)

	did, err := b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
	require.NoError(t, err)
	require.True(t, did)
	after := b.analyzed(t, store.TableTherapyPerform)
	require.NotNil(t, after.Last)
	require.Equal(t, int64(1), after.Count)
	require.Zero(t, after.ModsSince)
	require.InDelta(t, 5000, after.ReltuplesSeen, 1, "the planner now knows the rows")

	// Up to date now: nothing to do, and nothing done.
	did, err = b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
	require.NoError(t, err)
	require.False(t, did)
	require.Equal(t, int64(1), b.analyzed(t, store.TableTherapyPerform).Count)

	// A tenth more rows is autovacuum's threshold: 400 are not enough, 600 more are.
	b.sessions(t, 201, 16, 25)
	did, err = b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
	require.NoError(t, err)
	require.False(t, did, "400 changes on 5,000 rows are under 50 + 10%%")
	b.sessions(t, 217, 24, 25)
	did, err = b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
	require.NoError(t, err)
	require.True(t, did, "1,000 changes on 5,000 rows are over 50 + 10%%")
	require.Equal(t, int64(2), b.analyzed(t, store.TableTherapyPerform).Count)
}

func TestAnalyzeIfStaleLeavesAFreshTableAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sessions(t, 1, 2, 10) // 20 rows: under autovacuum's 50, in one page

	for _, table := range []string{store.TableTherapyPerform, store.TableRiverJob} {
		did, err := b.store.AnalyzeIfStale(b.ctx, table)
		require.NoError(t, err)
		require.False(t, did, table)
		a := b.analyzed(t, table)
		require.Nil(t, a.Last, table)
		require.Zero(t, a.Count, table)
	}
}

func TestAnalyzeIfStaleRunsOnceForConcurrentCallers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sessions(t, 1, 200, 25)

	const callers = 8
	var wg sync.WaitGroup
	results := make(chan bool, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			did, err := b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
			require.NoError(t, err)
			results <- did
		}()
	}
	wg.Wait()
	close(results)
	n := 0
	for did := range results {
		if did {
			n++
		}
	}
	require.Equal(t, 1, n, "one caller analyses, the others skip")
	require.Equal(t, int64(1), b.analyzed(t, store.TableTherapyPerform).Count)
}

func TestAnalyzeIfStaleSkipsWhileTheTableIsBeingAnalysed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sessions(t, 1, 200, 25)

	// What autovacuum or another ANALYZE holds while it works on the table.
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer tx.Rollback(b.ctx) //nolint:errcheck // a no-op after the explicit rollback
	_, err = tx.Exec(b.ctx, `LOCK TABLE therapy_perform IN SHARE UPDATE EXCLUSIVE MODE`)
	require.NoError(t, err)

	did, err := b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
	require.NoError(t, err, "a table someone else is on is skipped, not an error")
	require.False(t, did)
	require.NoError(t, tx.Rollback(b.ctx))

	did, err = b.store.AnalyzeIfStale(b.ctx, store.TableTherapyPerform)
	require.NoError(t, err)
	require.True(t, did)
}

func TestAnalyzeIfStaleAnalysesOnlyItsTables(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.AnalyzeIfStale(b.ctx, "pg_class; DROP TABLE river_job")
	require.ErrorContains(t, err, "not a table tidemark analyses")
}
