package fault_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// TestSIGTERMWhileJobWaitsOnRowLock stops a worker whose settlement is
// blocked on a row lock another transaction holds. The worker must not wait
// for the lock: after SHUTDOWN_GRACE it cancels the job, which is handed back
// (not left running), and exits 0. Once the lock is released another worker
// finishes the run with exact results.
func TestSIGTERMWhileJobWaitsOnRowLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, settlement, false)
	settlement.load(t, f)
	f.wenv = append(f.wenv, "SHUTDOWN_GRACE=1s")
	// Hold the lock of a due row half way through the run.
	blocker, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer blocker.Rollback(f.ctx) //nolint:errcheck
	_, err = blocker.Exec(f.ctx, `SELECT 1 FROM point_ledger WHERE id = (
		SELECT id FROM point_ledger WHERE processed_on IS NULL ORDER BY id OFFSET $1 LIMIT 1) FOR UPDATE`, settleDue/2)
	require.NoError(t, err)

	f.startWorkers(t, 1)
	settlement.start(t, f)
	testkit.WaitFor(t, 60*time.Second, "the settlement blocked on the row lock", func() (bool, error) {
		var n int64
		err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n)
		return n > 0, err
	})
	w := f.workers[0]
	stopped := time.Now()
	require.NoError(t, w.Stop(15*time.Second), "the worker must exit instead of waiting for the lock")
	o := outcome{Fault: "SIGTERM, job on a row lock", Batch: "settlement", Ready: time.Since(stopped), Note: "row lock held"}
	defer func() { record(t, o) }()
	require.Contains(t, w.Output(), "cancelling them so they are retried")
	state := f.text(t, `SELECT state::text FROM river_job WHERE kind = 'point_settlement'`)
	require.Contains(t, []string{"retryable", "available"}, state, "the job must be handed back, not left running")
	require.Positive(t, f.count(t, `SELECT count(*) FROM daily_batch`), "the chunks before the lock committed")

	require.NoError(t, blocker.Rollback(f.ctx))
	f.workers = nil
	f.startWorkers(t, 1)
	settlement.finish(t, f)
	o.Done = time.Since(stopped)
	o.Lost, o.Dups = settlement.verify(t, f)
	f.requireNoFailedJobs(t, settlement)
}
