package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func TestTherapyStatsWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		store *store.Store
		tx    pgx.Tx
	}

	setup := func(t *testing.T) (*rivertest.Worker[jobs.TherapyStatsArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		deps := jobs.Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
		w, tx := testkit.NewWorker(t, pool, jobs.NewTherapyStatsWorker(deps))
		return w, &testBundle{store: deps.Store, tx: tx}
	}

	// The month's bounds are midnights in BATCH_TZ: a session at 00:10 on
	// 1 November in Seoul is November's (in UTC it is still October).
	t.Run("RecomputesTheUserMonthInBatchTZ", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)
		_, err := b.store.Pool.Exec(ctx, `
			INSERT INTO therapy_user (id, status) VALUES (7, 'ACTIVE');
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
			    (7, '2026-10-31 23:30+09', 600, true),
			    (7, '2026-11-01 00:10+09', 60, true),
			    (7, '2026-11-15 12:00+09', 120, false),
			    (7, '2026-11-15 20:00+09', 30, true),
			    (7, '2026-12-01 00:00+09', 900, true)`)
		require.NoError(t, err)

		res, err := w.Work(ctx, t, b.tx, jobs.TherapyStatsArgs{TherapyUserID: 7, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)

		got, err := b.store.GetTherapyStatistics(ctx, 7, 2026, 11)
		require.NoError(t, err)
		require.Equal(t, []int64{3, 2, 210, 2}, []int64{int64(got.PerformCount), int64(got.CompletedCount), got.TotalDurationSeconds, int64(got.ActiveDays)})
		require.True(t, got.FirstPerformedAt.Equal(time.Date(2026, 11, 1, 0, 10, 0, 0, testkit.TZ())), "first %s", got.FirstPerformedAt)
		require.True(t, got.LastPerformedAt.Equal(time.Date(2026, 11, 15, 20, 0, 0, 0, testkit.TZ())), "last %s", got.LastPerformedAt)
	})

	// No retry can make a missing user exist: the job is cancelled at once,
	// with the reason, and writes nothing.
	t.Run("UnknownUserCancels", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, jobs.TherapyStatsArgs{TherapyUserID: 404, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, store.ErrUnknownTherapyUser.Error())
		_, err = b.store.GetTherapyStatistics(ctx, 404, 2026, 11)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("InvalidMonthCancels", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, jobs.TherapyStatsArgs{TherapyUserID: 7, Year: 2026, Month: 13, BusinessDate: "2026-12-01"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, "invalid args user 7 2026-13")
	})
}
