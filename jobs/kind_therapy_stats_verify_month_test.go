package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// A month's verification samples that month's rows only, runs once per month
// (also once River's cleaner moved its job to the archive) until a rerun, and
// a dry run does not count as the month verified.
func TestTherapyVerifyMonth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	tz := testkit.TZ()
	deps := jobs.Deps{Store: st, TZ: tz, Logger: testkit.Logger(t)}
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Queues: map[string]int{"default": 2}, Retention: 24 * time.Hour,
		RescueAfter: 90 * time.Second, FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}, deps)
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})

	// Users 1 and 2 in October and November; user 2's October and user 1's
	// November drift from their sessions.
	_, err = pool.Exec(ctx, `
		INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE');
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
		    (1, '2026-10-02 10:00+09', 60, true), (2, '2026-10-02 10:00+09', 60, true),
		    (1, '2026-11-02 10:00+09', 60, true), (2, '2026-11-02 10:00+09', 60, true)`)
	require.NoError(t, err)
	var keys []store.TherapyKey
	for _, m := range []int{10, 11} {
		keys = append(keys, store.NewTherapyKey(1, 2026, m, tz), store.NewTherapyKey(2, 2026, m, tz))
	}
	require.NoError(t, st.AggregateTherapy(ctx, keys, tz))
	_, err = pool.Exec(ctx, `UPDATE therapy_statistics SET perform_count = 5
		WHERE (therapy_user_id, month) IN ((2, 10), (1, 11))`)
	require.NoError(t, err)

	job, err := jobs.EnqueueTherapyVerifyMonth(ctx, client, st, "2026-10", false)
	require.NoError(t, err)
	_, err = jobs.EnqueueTherapyVerifyMonth(ctx, client, st, "2026-10", false)
	var active *jobs.RunActiveError
	require.ErrorAs(t, err, &active, "a second start while the first is queued")
	require.Equal(t, job.ID, active.JobID)

	done := waitFinished(t, pool, job.ID)
	require.Equal(t, rivertype.JobStateCompleted, done.State)
	var meta struct{ Output jobs.TherapyVerifyReport }
	require.NoError(t, json.Unmarshal(done.Metadata, &meta))
	rep := meta.Output
	require.Equal(t, []any{"2026-10", 2, 1, 1}, []any{rep.Month, rep.Checked, rep.Drifted, rep.Reenqueued})
	require.Equal(t, []int64{2, 2026, 10}, []int64{rep.Drifts[0].TherapyUserID, int64(rep.Drifts[0].Year), int64(rep.Drifts[0].Month)})
	var reenqueued string
	require.NoError(t, pool.QueryRow(ctx, `SELECT args ->> 'trigger' FROM river_job WHERE id = $1`, rep.JobIDs[0]).Scan(&reenqueued))
	require.Equal(t, jobs.TriggerVerify, reenqueued)

	// Completed: refused while its job is in river_job, and once River's
	// cleaner moved it to the archive.
	refusedAsCompleted := func(phase string) {
		_, err := jobs.EnqueueTherapyVerifyMonth(ctx, client, st, "2026-10", false)
		var completed *jobs.RunCompletedError
		require.ErrorAs(t, err, &completed, phase)
		require.Equal(t, job.ID, completed.JobID, phase)
	}
	refusedAsCompleted("in river_job")
	require.Positive(t, testkit.RunCleaner(t, pool))
	refusedAsCompleted("in the archive")
	rerun, err := jobs.EnqueueTherapyVerifyMonth(ctx, client, st, "2026-10", true)
	require.NoError(t, err)
	require.JSONEq(t, `{"month": "2026-10", "rerun": 1}`, string(rerun.EncodedArgs))
	require.Equal(t, rivertype.JobStateCompleted, waitFinished(t, pool, rerun.ID).State)

	// A dry run of November completes but does not verify it.
	dry, err := client.Insert(ctx, jobs.TherapyStatsVerifyArgs{Month: "2026-11", DryRun: true}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, waitFinished(t, pool, dry.Job.ID).State)
	months, err := st.CompletedVerifications(ctx, "2026-09", "2026-12")
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"2026-10": rerun.ID}, months)

	_, err = jobs.EnqueueTherapyVerifyMonth(ctx, client, st, "2026-13", false)
	require.EqualError(t, err, `month "2026-13": month out of range: want YYYY-MM with MM in 01..12`)

	// A month that is not one is cancelled by the worker, not retried.
	bad, err := client.Insert(ctx, jobs.TherapyStatsVerifyArgs{Month: "2026-1"}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCancelled, waitFinished(t, pool, bad.Job.ID).State)
}

// waitFinished waits for job id to be completed, cancelled or discarded and
// returns it, read from job_history (it may have been archived).
func waitFinished(t *testing.T, pool *pgxpool.Pool, id int64) *rivertype.JobRow {
	t.Helper()
	var row rivertype.JobRow
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("job %d finished", id), func() (bool, error) {
		var state string
		err := pool.QueryRow(context.Background(), `SELECT state::text, metadata FROM job_history WHERE id = $1`, id).
			Scan(&state, &row.Metadata)
		row.State = rivertype.JobState(state)
		return state == "completed" || state == "cancelled" || state == "discarded", err
	})
	row.ID = id
	return &row
}
