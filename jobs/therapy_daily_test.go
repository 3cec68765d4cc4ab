package jobs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/store"
)

func TestTherapyDailyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		pool *pgxpool.Pool
		tx   pgx.Tx
	}

	setup := func(t *testing.T) (*rivertest.Worker[TherapyDailyArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		deps := Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
		w, tx := testkit.NewWorker(t, pool, &TherapyDailyWorker{deps: deps})
		return w, &testBundle{pool: pool, tx: tx}
	}

	// The run on 1 December aggregates November (in BATCH_TZ): one
	// therapy_stats job per ACTIVE user with November sessions, none for an
	// inactive user or for December's sessions, and its counts as output.
	t.Run("FansOutLastMonthsUsers", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)
		_, err := b.pool.Exec(ctx, `
			INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE'), (3, 'INACTIVE'), (4, 'ACTIVE');
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
			    (1, '2026-11-30 23:30+09', 60, true),
			    (2, '2026-11-02 10:00+09', 60, true),
			    (3, '2026-11-02 10:00+09', 60, true),
			    (4, '2026-12-01 00:10+09', 60, true)`)
		require.NoError(t, err)

		res, err := w.Work(ctx, t, b.tx, TherapyDailyArgs{BusinessDate: "2026-12-01"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)

		var meta struct{ Output TherapyDailyOutput }
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		require.Equal(t, TherapyDailyOutput{Year: 2026, Month: 11, Targets: 2, Inserted: 2}, meta.Output)
		inserted := rivertest.RequireManyInserted(ctx, t, riverpgxv5.New(b.pool), []rivertest.ExpectedJob{
			{Args: TherapyStatsArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: "therapy"}},
			{Args: TherapyStatsArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: "therapy"}},
		})
		for i, user := range []int64{1, 2} {
			var args TherapyStatsArgs
			require.NoError(t, json.Unmarshal(inserted[i].EncodedArgs, &args))
			require.Equal(t, TherapyStatsArgs{TherapyUserID: user, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, args)
		}
	})

	// A run after the first of the month also enqueues the first's run, in
	// case no worker ran that day to finalise the month before.
	t.Run("EnqueuesAMissedFirstOfMonth", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, TherapyDailyArgs{BusinessDate: "2026-12-05"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		first := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), &TherapyDailyArgs{}, nil)
		require.Equal(t, "2026-12-01", first.Args.BusinessDate)
	})

	t.Run("BadDateCancels", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, TherapyDailyArgs{BusinessDate: "2026-13-01"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, `business date "2026-13-01": want YYYY-MM-DD`)
	})
}
