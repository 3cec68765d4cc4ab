package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/store"
)

func TestTherapyStatsVerifyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		store *store.Store
		tx    pgx.Tx
	}

	// setup aggregates November for users 1 and 2, then makes user 2's row
	// drift from its sessions, as a lost write or a hand edit would.
	setup := func(t *testing.T) (*rivertest.Worker[TherapyStatsVerifyArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		deps := Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
		_, err := pool.Exec(ctx, `
			INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE');
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
			    (1, '2026-11-02 10:00+09', 60, true), (2, '2026-11-02 10:00+09', 60, true)`)
		require.NoError(t, err)
		require.NoError(t, deps.Store.AggregateTherapy(ctx, []store.TherapyKey{
			store.NewTherapyKey(1, 2026, 11, deps.TZ), store.NewTherapyKey(2, 2026, 11, deps.TZ)}, deps.TZ))
		_, err = pool.Exec(ctx, `UPDATE therapy_statistics SET perform_count = 5 WHERE therapy_user_id = 2`)
		require.NoError(t, err)
		w, tx := testkit.NewWorker(t, pool, &TherapyStatsVerifyWorker{deps: deps})
		return w, &testBundle{store: deps.Store, tx: tx}
	}

	report := func(t *testing.T, res *rivertest.WorkResult) TherapyVerifyReport {
		t.Helper()
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var meta struct{ Output TherapyVerifyReport }
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		return meta.Output
	}

	// The drifted row is reported and its aggregation enqueued again, with a
	// recover id of its own so that today's earlier run does not skip it.
	t.Run("ReenqueuesTheDriftedRow", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, TherapyStatsVerifyArgs{}, nil)
		require.NoError(t, err)
		rep := report(t, res)
		require.Equal(t, []int{2, 1, 1}, []int{rep.Checked, rep.Drifted, rep.Reenqueued})
		require.Equal(t, []int{5, 1}, []int{rep.Drifts[0].StoredCount, rep.Drifts[0].ActualCount})

		job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.store.Pool), &TherapyStatsArgs{}, nil)
		require.Equal(t, []int64{rep.JobIDs[0], 2, 2026, 11}, []int64{job.ID, job.Args.TherapyUserID, int64(job.Args.Year), int64(job.Args.Month)})
		require.Equal(t, TriggerVerify, job.Args.Trigger)
		require.True(t, strings.HasPrefix(job.Args.RecoverID, "verify:"), job.Args.RecoverID)
	})

	t.Run("DryRunEnqueuesNothing", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)

		res, err := w.Work(ctx, t, b.tx, TherapyStatsVerifyArgs{DryRun: true}, nil)
		require.NoError(t, err)
		rep := report(t, res)
		require.Equal(t, []int{2, 1, 0}, []int{rep.Checked, rep.Drifted, rep.Reenqueued})
		rivertest.RequireNotInserted(ctx, t, riverpgxv5.New(b.store.Pool), &TherapyStatsArgs{}, nil)
	})
}
