package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
)

// TestSettlementWorkerKilledMidStepResumes runs a settlement in the real
// worker binary, SIGKILLs it once some chunks have committed, and restarts it.
//
// Everything is real: the kill lands while the worker is committing chunks,
// the in-flight chunk's transaction dies with its connection, River's rescuer
// in the restarted binary hands the job back once it has run longer than the
// settlement's timeout (1 minute; the rescuer checks every 30 s), and the
// retry resumes from the cursor the last committed chunk saved.
func TestSettlementWorkerKilledMidStepResumes(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{noStart: true})
	ctx := context.Background()
	const date, due = "2026-03-10", 8000
	// Members 1..50 earn first; then a mix of kinds, all due on the 10th, and
	// settled history that must not be read.
	_, err := b.pool.Exec(ctx, `
		INSERT INTO point_ledger (member_id, kind, amount, occurred_at, process_on, processed_on)
		SELECT g % 50 + 1, 'EARN', 1, '2026-01-01 10:00+09', '2026-01-02', '2026-01-02' FROM generate_series(1, 20000) g;
		INSERT INTO point_ledger (member_id, kind, amount, occurred_at)
		SELECT g % 50 + 1, (ARRAY['EARN', 'USE', 'EXPIRE'])[g % 3 + 1], g % 97 + 1,
		       '2026-03-09 00:00+09'::timestamptz + make_interval(secs => g) FROM generate_series(1, 8000) g`)
	require.NoError(t, err)

	job, err := jobs.EnqueueSettlement(ctx, b.client, b.st, date, jobs.SettlementRunOpts{CommitInterval: 10})
	require.NoError(t, err)

	dbURL := b.pool.Config().ConnString()
	env := []string{"DATABASE_URL=" + dbURL, "PERIODIC_JOBS=false", "TIDEMARK_QUEUES=default=2"}
	worker := testbin.StartWorker(t, env...)
	testkit.WaitFor(t, 60*time.Second, "100 rows collected by committed chunks", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM daily_batch WHERE run_date = $1::date`, date) >= 100, nil
	})
	worker.Kill()
	killedAt := time.Now()
	// A COMMIT the worker sent just before dying may still be executing in
	// its backend; wait until none of its backends is busy.
	testkit.WaitFor(t, 60*time.Second, "the killed worker's backends idle", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state IN ('active', 'idle in transaction')`) == 0, nil
	})

	var before int64
	var state string
	var cursors map[string]jobs.SettlementCursor
	var meta []byte
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM daily_batch WHERE run_date = $2::date), state::text, metadata
		FROM river_job WHERE id = $1`, job.ID, date).Scan(&before, &state, &meta))
	require.Less(t, before, int64(due), "the worker finished before it was killed; nothing to resume")
	require.Equal(t, "running", state)
	var m struct {
		Cursors map[string]jobs.SettlementCursor `json:"river:resumable_cursor"`
	}
	require.NoError(t, json.Unmarshal(meta, &m))
	cursors = m.Cursors
	// The saved cursor is exactly what the committed chunks cover.
	cur := cursors["collect"]
	require.Equal(t, before, cur.Written)
	require.Equal(t, before/10, cur.Chunks)
	require.Equal(t, b.count(t, `SELECT max(ledger_id) FROM daily_batch WHERE run_date = $1::date`, date), cur.After)

	testbin.StartWorker(t, env...)
	done := b.waitFinalWithin(t, job.ID, 150*time.Second)
	t.Logf("rescued and completed %s after the SIGKILL", time.Since(killedAt).Round(time.Second))
	require.Equal(t, "completed", string(done.State))
	require.Equal(t, 2, done.Attempt)
	require.Contains(t, done.Errors[0].Error, "Stuck job rescued", "River's rescuer handed the job back")

	// Every due row once, none twice; the rows committed before the kill
	// were not redone by the second attempt.
	require.Equal(t, int64(due), b.count(t, `SELECT count(*) FROM daily_batch WHERE run_date = $1::date`, date))
	require.Equal(t, int64(due), b.count(t, `SELECT count(DISTINCT ledger_id) FROM daily_batch WHERE run_date = $1::date`, date))
	require.Equal(t, before, b.count(t, `SELECT count(*) FROM daily_batch WHERE run_date = $1::date AND processed_at < $2`, date, killedAt))
	require.Equal(t, int64(0), b.count(t, `SELECT count(*) FROM point_ledger WHERE processed_on IS NULL OR processed_on < process_on`))
	out := output(t, done)
	require.Equal(t, jobs.SettlementCounts{Read: due, Written: due, Chunks: due / 10}, out.SettlementCounts)

	// Totals equal a direct SQL sum over the ledger.
	st := b.requireSettledAsLedger(t, date)
	var earned, used, expired int64
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT sum(amount) FILTER (WHERE kind = 'EARN'), sum(amount) FILTER (WHERE kind = 'USE'), sum(amount) FILTER (WHERE kind = 'EXPIRE')
		FROM point_ledger WHERE process_on = $1::date`, date).Scan(&earned, &used, &expired))
	require.Equal(t, []int64{earned, used, expired, due}, []int64{st.Earned, st.Used, st.Expired, int64(st.ItemCount)})
}
