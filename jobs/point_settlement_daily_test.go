package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func TestPointSettlementDailyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		client *jobs.Client // insert-only, for runs started outside the job
		driver *riverpgxv5.Driver
		store  *store.Store
		tx     pgx.Tx
	}

	setup := func(t *testing.T) (*rivertest.Worker[jobs.PointSettlementDailyArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		deps := jobs.Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
		client, err := jobs.NewClient(pool, jobs.ClientConfig{}, deps)
		require.NoError(t, err)
		w, tx := testkit.NewWorker(t, pool, jobs.NewPointSettlementDailyWorker(deps))
		return w, &testBundle{client: client, driver: riverpgxv5.New(pool), store: deps.Store, tx: tx}
	}

	output := func(t *testing.T, res *rivertest.WorkResult) jobs.SettlementDailyOutput {
		t.Helper()
		var meta struct{ Output jobs.SettlementDailyOutput }
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		return meta.Output
	}

	// With nothing ever settled, the night's trigger starts run 1 of its own
	// business date.
	t.Run("StartsTheDatesRun", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, jobs.PointSettlementDailyArgs{BusinessDate: "2026-03-10"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, jobs.SettlementDailyOutput{Missing: []string{"2026-03-10"}, Started: "2026-03-10"}, output(t, res))
		run := rivertest.RequireInserted(ctx, t, b.driver, &jobs.PointSettlementArgs{}, nil)
		require.Equal(t, &jobs.PointSettlementArgs{RunDate: "2026-03-10", Run: 1, Until: "2026-03-10", Trigger: jobs.SettlementTriggerDaily}, run.Args)
	})

	// A run of the date already queued (an operator's) is not doubled: the
	// trigger snoozes and looks again.
	t.Run("WaitsForTheQueuedRun", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)
		queued, err := jobs.EnqueueSettlement(ctx, b.client, b.store, "2026-03-10", jobs.SettlementRunOpts{})
		require.NoError(t, err)

		res, err := w.Work(ctx, t, b.tx, jobs.PointSettlementDailyArgs{BusinessDate: "2026-03-10"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.WithinDuration(t, time.Now().Add(time.Minute), res.Job.ScheduledAt, 10*time.Second)
		require.Equal(t, queued.ID, output(t, res).WaitingOn)
		run := rivertest.RequireInserted(ctx, t, b.driver, &jobs.PointSettlementArgs{}, nil)
		require.Equal(t, queued.ID, run.ID, "still the one run")
	})

	t.Run("BadDateCancels", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, jobs.PointSettlementDailyArgs{BusinessDate: "10/03/2026"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, `date "10/03/2026": want YYYY-MM-DD`)
		rivertest.RequireNotInserted(ctx, t, b.driver, &jobs.PointSettlementArgs{}, nil)
	})
}
