package jobs_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
)

// auditSnapshot is everything an operator reads about past runs: both audit
// views row by row, the batch page's rows for the dates, and job_history.
func (b *testBundle) auditSnapshot(t *testing.T, from, to string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, sql := range map[string]string{
		"therapy_batch_log":   `SELECT coalesce(json_agg(l ORDER BY job_id), '[]') FROM therapy_batch_log l`,
		"batch_job_execution": `SELECT coalesce(json_agg(e ORDER BY job_execution_id), '[]') FROM batch_job_execution e`,
		"job_history": `SELECT coalesce(json_agg(json_build_object('id', id, 'kind', kind, 'state', state, 'args', args,
			'metadata', metadata, 'attempt', attempt, 'finalized_at', finalized_at) ORDER BY id), '[]') FROM job_history`,
	} {
		var v string
		require.NoError(t, b.pool.QueryRow(b.ctx, sql).Scan(&v), name)
		out[name] = v
	}
	runs, err := b.store.BatchRuns(b.ctx, from, to, seoul)
	require.NoError(t, err)
	page, err := json.Marshal(runs)
	require.NoError(t, err)
	out["batch page"] = string(page)
	return out
}

// A finished job taken out of river_job by River's cleaner is in every audit
// view as it was before, and runs are still refused as completed.
func TestCleanedJobsStayInEveryAuditView(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 3, kstAt(2026, 11, 14, 10, 0))
	job, err := jobs.EnqueueTherapyDaily(b.ctx, b.client, b.store, "2026-11-15", false)
	require.NoError(t, err)
	// One job that fails for good, so FAIL rows are archived too.
	_, err = b.client.Insert(b.ctx, jobs.TherapyStatsArgs{TherapyUserID: 404, Year: 2026, Month: 11,
		BusinessDate: "2026-11-15", Trigger: jobs.TriggerBackfill}, nil)
	require.NoError(t, err)
	b.waitIdle(t)
	before := b.auditSnapshot(t, "2026-11-14", "2026-11-16")
	require.Contains(t, before["therapy_batch_log"], `"status":"FAIL"`)
	require.Contains(t, before["therapy_batch_log"], `"status":"SUCCESS"`)

	// Every job is finished (the three users, the failing one, the fan-out
	// and the catch-up run of the 1st): the cleaner takes them all, the
	// archive has them.
	require.Equal(t, int64(6), testkit.RunCleaner(t, b.pool))
	var inRiver, archived int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM river_job), (SELECT count(*) FROM job_archive)`).
		Scan(&inRiver, &archived))
	require.Equal(t, [2]int{0, 6}, [2]int{inRiver, archived})
	require.Equal(t, before, b.auditSnapshot(t, "2026-11-14", "2026-11-16"))

	var status string
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT status, count(*) FROM therapy_batch_log
		WHERE year = 2026 AND month = 11 AND status = 'SUCCESS' GROUP BY status`).Scan(&status, &n))
	require.Equal(t, 3, n)

	// The date's run is refused as completed, by the job now archived.
	_, err = jobs.EnqueueTherapyDaily(b.ctx, b.client, b.store, "2026-11-15", false)
	var done *jobs.RunCompletedError
	require.ErrorAs(t, err, &done)
	require.Equal(t, job.ID, done.JobID)
	require.ErrorContains(t, err, "therapy_daily 2026-11-15: already completed as job")
	require.ErrorContains(t, err, "use --rerun to run it again")
}

// The daily run of a date runs once: refused while queued, and after it
// completed even once its job was cleaned away, until a rerun; a periodic
// insert that bypasses the check (River's enqueuer) is cancelled by the worker.
func TestTherapyDailyRunIdentityOutlivesTheQueue(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 2, kstAt(2026, 11, 3, 9, 0))
	first, err := jobs.EnqueueTherapyDaily(b.ctx, b.client, b.store, "2026-11-05", false)
	require.NoError(t, err)
	_, err = jobs.EnqueueTherapyDaily(b.ctx, b.client, b.store, "2026-11-05", false)
	if err != nil {
		// Still queued or running: refused as active.
		var active *jobs.RunActiveError
		if !errors.As(err, &active) {
			var done *jobs.RunCompletedError
			require.ErrorAs(t, err, &done, "refused as active or, if it already finished, completed")
		}
	} else {
		t.Fatal("a second run of a queued date was enqueued")
	}
	b.waitIdle(t)
	testkit.RunCleaner(t, b.pool)

	_, err = jobs.EnqueueTherapyDaily(b.ctx, b.client, b.store, "2026-11-05", false)
	var done *jobs.RunCompletedError
	require.ErrorAs(t, err, &done)
	require.Equal(t, first.ID, done.JobID)

	// What River's periodic enqueuer would insert, past every check.
	res, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-11-05"}, nil)
	require.NoError(t, err)
	require.False(t, res.UniqueSkippedAsDuplicate, "the first run's unique key went with its job")
	b.waitIdle(t)
	var state string
	var lastErr string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state::text, errors[array_length(errors, 1)] ->> 'error' FROM river_job WHERE id = $1`,
		res.Job.ID).Scan(&state, &lastErr))
	require.Equal(t, "cancelled", state)
	require.Contains(t, lastErr, "already completed as job")

	rerun, err := jobs.EnqueueTherapyDaily(b.ctx, b.client, b.store, "2026-11-05", true)
	require.NoError(t, err)
	var args jobs.TherapyDailyArgs
	require.NoError(t, json.Unmarshal(rerun.EncodedArgs, &args))
	require.Equal(t, jobs.TherapyDailyArgs{BusinessDate: "2026-11-05", Rerun: 1}, args)
	b.waitIdle(t)
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state::text FROM river_job WHERE id = $1`, rerun.ID).Scan(&state))
	require.Equal(t, "completed", state)
	var runs int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM batch_job_execution
		WHERE job_name = 'therapy_daily' AND status = 'COMPLETED' AND identifying_params ->> 'business_date' = '2026-11-05'`).Scan(&runs))
	require.Equal(t, 2, runs)
}

// The archive keeps whole months: a month that ended AUDIT_RETENTION ago is
// dropped with its rows, the months ahead exist, and rows that landed in the
// default partition are moved into their month first.
func TestArchiveMaintenanceDropsExpiredMonths(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	// Archived jobs of January and of last month: January's partition does
	// not exist yet (the migration created two months back from today), so
	// its row is in the default partition.
	for i, at := range []time.Time{time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)} {
		b.exec(t, `INSERT INTO job_archive (id, kind, queue, state, attempt, max_attempts, priority, args, metadata, tags,
			created_at, scheduled_at, attempted_at, finalized_at)
			VALUES ($1, 'therapy_stats', 'therapy', 'completed', 1, 5, 1, '{}', '{}', '{}', $2, $2, $2, $2)`, 1_000_000+i, at)
	}
	out, err := b.store.MaintainArchive(b.ctx, 400*24*time.Hour, now)
	require.NoError(t, err)
	require.Equal(t, []string{"job_archive_2025_01"}, out.Dropped, "January 2025 ended more than 400 days before now")
	require.Contains(t, out.Created, "job_archive_2025_01")
	var left int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM job_archive`).Scan(&left))
	require.Equal(t, 1, left)
	parts, err := b.store.ArchivePartitions(b.ctx)
	require.NoError(t, err)
	require.Subset(t, parts, []string{"job_archive_2026_11", "job_archive_2026_12", "job_archive_2027_01", "job_archive_2027_02"})
	require.NotContains(t, parts, "job_archive_2025_01")

	again, err := b.store.MaintainArchive(b.ctx, 400*24*time.Hour, now)
	require.NoError(t, err)
	require.Empty(t, again.Created)
	require.Empty(t, again.Dropped)

	// The worker does the same at the current time, with AUDIT_RETENTION
	// from its deps: every month left ended less than that long ago, and the
	// current month and the two after it exist.
	retention := 31 * 24 * time.Hour
	worker, tx := testkit.NewWorker(t, b.pool, jobs.NewArchiveMaintainWorker(jobs.Deps{Store: b.store, TZ: seoul,
		Logger: testkit.Logger(t), AuditRetention: retention}))
	res, err := worker.Work(b.ctx, t, tx, jobs.ArchiveMaintainArgs{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	parts, err = b.store.ArchivePartitions(b.ctx)
	require.NoError(t, err)
	horizon := time.Now().UTC().Add(-retention)
	for _, p := range parts {
		month, err := time.Parse("job_archive_2006_01", p)
		require.NoError(t, err)
		require.True(t, month.AddDate(0, 1, 0).After(horizon), "%s ended before %s", p, horizon)
	}
	this := time.Now().UTC()
	for i := range 3 {
		m := time.Date(this.Year(), this.Month()+time.Month(i), 1, 0, 0, 0, 0, time.UTC)
		require.Contains(t, parts, m.Format("job_archive_2006_01"))
	}
}
