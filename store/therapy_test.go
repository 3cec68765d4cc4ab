package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

var seoul = testkit.TZ()

type testBundle struct {
	ctx   context.Context
	store *store.Store
	pool  *pgxpool.Pool // the test database's pool, for the test's own SQL
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := testkit.Pool(t)
	return &testBundle{ctx: context.Background(), store: store.New(pool), pool: pool}
}

// users creates therapy users ids, all with status.
func (b *testBundle) users(t *testing.T, status string, ids ...int64) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `INSERT INTO therapy_user (id, status) SELECT unnest($1::bigint[]), $2`, ids, status)
	require.NoError(t, err)
}

func (b *testBundle) perform(t *testing.T, user int64, at time.Time, seconds int, completed bool) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		VALUES ($1, $2, $3, $4)`, user, at, seconds, completed)
	require.NoError(t, err)
}

func kst(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, seoul)
}

func TestAggregateTherapyMonthBoundariesInBatchTZ(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1)
	b.perform(t, 1, kst(2026, 10, 31, 23, 59), 100, true) // October in KST (14:59 UTC, 31 Oct)
	b.perform(t, 1, kst(2026, 11, 1, 0, 0), 200, true)    // first instant of November in KST (15:00 UTC, 31 Oct)
	b.perform(t, 1, kst(2026, 11, 1, 8, 0), 300, false)   // same KST date as the one above
	b.perform(t, 1, kst(2026, 11, 30, 23, 30), 400, true) // November in KST although 14:30 UTC on 30 Nov
	b.perform(t, 1, kst(2026, 12, 1, 0, 0), 500, true)    // December

	require.NoError(t, b.store.AggregateTherapy(b.ctx, []store.TherapyKey{store.NewTherapyKey(1, 2026, 11, seoul)}, seoul))

	got, err := b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 3, got.PerformCount)
	require.Equal(t, 2, got.CompletedCount)
	require.Equal(t, int64(900), got.TotalDurationSeconds)
	require.Equal(t, 2, got.ActiveDays, "1 Nov 00:00 and 08:00 KST are one business day; 30 Nov is another")
	require.True(t, got.FirstPerformedAt.Equal(kst(2026, 11, 1, 0, 0)))
	require.True(t, got.LastPerformedAt.Equal(kst(2026, 11, 30, 23, 30)))
}

func TestAggregateTherapyRecomputesWholeMonthIdempotently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1)
	key := store.NewTherapyKey(1, 2026, 11, seoul)
	b.perform(t, 1, kst(2026, 11, 3, 10, 0), 60, true)
	require.NoError(t, b.store.AggregateTherapy(b.ctx, []store.TherapyKey{key}, seoul))
	b.perform(t, 1, kst(2026, 11, 2, 10, 0), 60, false) // earlier in the month than the last aggregation's rows
	require.NoError(t, b.store.AggregateTherapy(b.ctx, []store.TherapyKey{key}, seoul))
	require.NoError(t, b.store.AggregateTherapy(b.ctx, []store.TherapyKey{key, key}, seoul), "a repeated key in one batch is one upsert")

	got, err := b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 2, got.PerformCount)
	require.Equal(t, 1, got.CompletedCount)
	require.Equal(t, 2, got.ActiveDays)

	_, err = b.store.GetTherapyStatistics(b.ctx, 1, 2026, 12)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestTherapyTargetsIsIncremental(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1, 2, 3, 4, 5)
	b.users(t, "INACTIVE", 6)
	for id := int64(1); id <= 6; id++ {
		b.perform(t, id, kst(2026, 11, 10, 9, 0), 60, true)
	}
	b.perform(t, 5, kst(2026, 10, 10, 9, 0), 60, true) // another month only matters for October

	novemberTargets := func() []int64 {
		targets, err := b.store.TherapyTargets(b.ctx, 2026, 11, seoul)
		require.NoError(t, err)
		return targets
	}
	targets := novemberTargets()
	require.Equal(t, []int64{1, 2, 3, 4, 5}, targets, "ACTIVE users with rows in the month, never aggregated")

	var keys []store.TherapyKey
	for _, id := range targets {
		keys = append(keys, store.NewTherapyKey(id, 2026, 11, seoul))
	}
	require.NoError(t, b.store.AggregateTherapy(b.ctx, keys, seoul))
	require.Empty(t, novemberTargets(), "users with nothing new are not selected again")

	// User 2 gets a new row; user 3 gets a row whose transaction began before
	// the last aggregation (created_at older than aggregated_at) but committed
	// after it; user 4 gets a row in December only.
	b.perform(t, 2, kst(2026, 11, 11, 9, 0), 60, true)
	_, err := b.pool.Exec(b.ctx, `
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed, created_at)
		VALUES (3, $1, 60, true, now() - interval '1 hour')`, kst(2026, 11, 12, 9, 0))
	require.NoError(t, err)
	b.perform(t, 4, kst(2026, 12, 1, 9, 0), 60, true)

	require.Equal(t, []int64{2, 3}, novemberTargets())
}

// Many concurrent aggregations of one user-month, while rows keep arriving,
// never fail on the unique key and end with the month's true totals.
func TestAggregateTherapyConcurrentSameKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1, 2)
	keys := []store.TherapyKey{store.NewTherapyKey(1, 2026, 11, seoul), store.NewTherapyKey(2, 2026, 11, seoul)}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				b.perform(t, int64(1+(g+i)%2), kst(2026, 11, 1+i, g, 0), 10, true)
				// Alternate the key order so batches lock in different orders as given.
				ks := keys
				if g%2 == 1 {
					ks = []store.TherapyKey{keys[1], keys[0]}
				}
				errs <- b.store.AggregateTherapy(b.ctx, ks, seoul)
			}
		}(g)
	}
	go func() { wg.Wait(); close(errs) }()
	for err := range errs {
		require.NoError(t, err)
	}
	for _, u := range []int64{1, 2} {
		got, err := b.store.GetTherapyStatistics(b.ctx, u, 2026, 11)
		require.NoError(t, err)
		require.Equal(t, 40, got.PerformCount, "user %d", u)
		require.Equal(t, int64(400), got.TotalDurationSeconds, "user %d", u)
	}
}

func TestMissingTherapyUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1)
	b.users(t, "INACTIVE", 3)
	missing, err := b.store.MissingTherapyUsers(b.ctx, []int64{1, 2, 3, 4})
	require.NoError(t, err)
	require.Equal(t, []int64{2, 4}, missing)
}

// A batch is one transaction: when one key fails, no key of the batch is
// written (the combiner then runs each key alone).
func TestAggregateTherapyBatchIsAtomic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1, 2)
	b.perform(t, 1, kst(2026, 11, 3, 10, 0), 60, true)
	_, err := b.pool.Exec(b.ctx, `
		CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.therapy_user_id = 2 THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER test_fail BEFORE INSERT ON therapy_statistics FOR EACH ROW EXECUTE FUNCTION test_fail();`)
	require.NoError(t, err)
	err = b.store.AggregateTherapy(b.ctx, []store.TherapyKey{
		store.NewTherapyKey(1, 2026, 11, seoul),
		store.NewTherapyKey(2, 2026, 11, seoul),
	}, seoul)
	require.ErrorContains(t, err, "injected failure")
	_, err = b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.ErrorIs(t, err, store.ErrNotFound, "user 1's row was rolled back with the batch")
}

// A key whose user does not exist writes nothing and says so; the others in
// its batch are written.
func TestAggregateTherapyUnknownUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1)
	err := b.store.AggregateTherapy(b.ctx, []store.TherapyKey{store.NewTherapyKey(99, 2026, 11, seoul)}, seoul)
	require.ErrorIs(t, err, store.ErrUnknownTherapyUser)
	require.ErrorContains(t, err, "user 99")

	err = b.store.AggregateTherapy(b.ctx, []store.TherapyKey{
		store.NewTherapyKey(1, 2026, 11, seoul), store.NewTherapyKey(99, 2026, 11, seoul),
	}, seoul)
	require.ErrorIs(t, err, store.ErrUnknownTherapyUser)
	_, err = b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.NoError(t, err)
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM therapy_statistics WHERE therapy_user_id = 99`).Scan(&n))
	require.Zero(t, n)
}

// The aggregation waits for its key's lock and computes from a snapshot taken
// after the lock is granted: a row committed while it waited is counted.
func TestAggregateTherapySnapshotAfterLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users(t, "ACTIVE", 1)
	b.perform(t, 1, kst(2026, 11, 3, 10, 0), 60, true)

	holder, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer holder.Rollback(b.ctx) //nolint:errcheck
	_, err = holder.Exec(b.ctx, `SELECT pg_advisory_xact_lock(hashtextextended('therapy_stats:1:2026:11', 0))`)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		done <- b.store.AggregateTherapy(b.ctx, []store.TherapyKey{store.NewTherapyKey(1, 2026, 11, seoul)}, seoul)
	}()
	testkit.WaitFor(t, 10*time.Second, "the aggregation waiting for the key's lock", func() (bool, error) {
		var waiting bool
		err := b.pool.QueryRow(b.ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`).Scan(&waiting)
		return waiting, err
	})

	b.perform(t, 1, kst(2026, 11, 4, 10, 0), 60, true) // committed while it waits
	require.NoError(t, holder.Commit(b.ctx))
	require.NoError(t, <-done)

	got, err := b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 2, got.PerformCount)
}
