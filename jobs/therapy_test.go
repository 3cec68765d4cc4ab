package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

var seoul = testkit.TZ()

func kstAt(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, seoul)
}

type testBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	store  *store.Store
	client *jobs.Client
}

// setupTherapy gives the test its own database and a River client working every
// queue in-process (periodic jobs off: tests trigger runs themselves).
func setupTherapy(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues:            map[string]int{"default": 5, "therapy": 20},
		Retention:         24 * time.Hour,
		RescueAfter:       90 * time.Second,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	}, jobs.Deps{Store: st, TZ: seoul, Logger: testkit.Logger(t)})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	})
	return &testBundle{ctx: ctx, pool: pool, store: st, client: client}
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

// users creates ACTIVE users first..last with one perform each at `at`.
func (b *testBundle) users(t *testing.T, first, last int64, at time.Time) {
	t.Helper()
	b.exec(t, `INSERT INTO therapy_user (id, status) SELECT g, 'ACTIVE' FROM generate_series($1::bigint, $2::bigint) g`, first, last)
	b.exec(t, `INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		SELECT g, $3, 60, true FROM generate_series($1::bigint, $2::bigint) g`, first, last, at)
}

// waitJob polls until job id reaches one of states, or fails the test.
func (b *testBundle) waitJob(t *testing.T, id int64, states ...string) string {
	t.Helper()
	var state string
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("job %d %v", id, states), func() (bool, error) {
		if err := b.pool.QueryRow(b.ctx, `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&state); err != nil {
			return false, err
		}
		if !slices.Contains(states, state) {
			return false, fmt.Errorf("job %d is %s", id, state)
		}
		return true, nil
	})
	return state
}

// waitIdle polls until no job is outstanding (what `enqueue wait` waits for).
func (b *testBundle) waitIdle(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, 60*time.Second, "no job outstanding", func() (bool, error) {
		n, err := b.store.OutstandingJobs(b.ctx)
		return n == 0, err
	})
}

func (b *testBundle) statusCounts(t *testing.T) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT status, count(*) FROM therapy_batch_log GROUP BY status`)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(t, rows.Scan(&s, &n))
		out[s] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// failUser makes every write of user's statistics fail (a trigger), until
// unfailUser.
func (b *testBundle) failUser(t *testing.T, user int64) {
	t.Helper()
	b.exec(t, `CREATE TABLE IF NOT EXISTS test_fail_user (id bigint PRIMARY KEY)`)
	b.exec(t, `CREATE OR REPLACE FUNCTION test_fail_stats() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF EXISTS (SELECT 1 FROM test_fail_user WHERE id = NEW.therapy_user_id) THEN
				RAISE EXCEPTION 'injected failure for user %', NEW.therapy_user_id;
			END IF;
			RETURN NEW;
		END $$`)
	b.exec(t, `CREATE OR REPLACE TRIGGER test_fail_stats BEFORE INSERT OR UPDATE ON therapy_statistics
		FOR EACH ROW EXECUTE FUNCTION test_fail_stats()`)
	b.exec(t, `INSERT INTO test_fail_user VALUES ($1)`, user)
}

func (b *testBundle) unfailUser(t *testing.T, user int64) {
	t.Helper()
	b.exec(t, `DELETE FROM test_fail_user WHERE id = $1`, user)
}

func TestTherapyDailyOnFirstOfMonthFinalisesPreviousMonth(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 50, kstAt(2026, 11, 30, 23, 30)) // last half hour of November, KST
	b.exec(t, `INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES (1, $1, 60, true)`,
		kstAt(2026, 12, 1, 0, 10)) // December: not part of the run

	res, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-12-01"}, nil)
	require.NoError(t, err)
	b.waitJob(t, res.Job.ID, "completed")
	b.waitIdle(t)

	for _, u := range []int64{1, 25, 50} {
		got, err := b.store.GetTherapyStatistics(b.ctx, u, 2026, 11)
		require.NoError(t, err)
		require.Equal(t, 1, got.PerformCount, "user %d: November holds exactly its November row", u)
	}
	_, err = b.store.GetTherapyStatistics(b.ctx, 1, 2026, 12)
	require.ErrorIs(t, err, store.ErrNotFound, "the 1 December run does not aggregate December")

	var out jobs.TherapyDailyOutput
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (metadata->'output')::jsonb FROM river_job WHERE id = $1`, res.Job.ID).Scan(&out))
	require.Equal(t, jobs.TherapyDailyOutput{Year: 2026, Month: 11, Targets: 50, Inserted: 50}, out)
	require.Equal(t, map[string]int{"SUCCESS": 50}, b.statusCounts(t))

	// The same business date again is a duplicate: nothing runs twice.
	again, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-12-01"}, nil)
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate)

	// 2 December aggregates December, where only user 1 has a row; 3 December
	// selects nobody, since nothing changed after that aggregation.
	for _, run := range []struct {
		date string
		want int
	}{{"2026-12-02", 1}, {"2026-12-03", 0}} {
		date, want := run.date, run.want
		next, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: date}, nil)
		require.NoError(t, err)
		b.waitJob(t, next.Job.ID, "completed")
		b.waitIdle(t)
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (metadata->'output')::jsonb FROM river_job WHERE id = $1`, next.Job.ID).Scan(&out))
		require.Equal(t, jobs.TherapyDailyOutput{Year: 2026, Month: 12, Targets: want, Inserted: want}, out, date)
	}
}

func TestTherapyStatsOneUserFailsOthersSucceedThenRetrySucceeds(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 200, kstAt(2026, 11, 5, 12, 0))
	b.failUser(t, 42)

	res, err := jobs.EnqueueTherapyStats(b.ctx, b.client, b.store, seq(1, 200), 2026, 11, "2026-11-21", jobs.TriggerBackfill, nil)
	require.NoError(t, err)
	require.Equal(t, 200, res.Inserted)
	var id42 int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT id FROM river_job WHERE kind = 'therapy_stats' AND args->>'therapy_user_id' = '42'`).Scan(&id42))

	// User 42's job fails and waits for its retry (River's backoff: ~1 s for
	// the first; River keeps such a short retry `available` with a future
	// scheduled_at). Its cause goes away before then, as a transient fault would.
	testkit.WaitFor(t, 30*time.Second, "user 42's first attempt failed", func() (bool, error) {
		var errs int
		err := b.pool.QueryRow(b.ctx, `SELECT coalesce(array_length(errors, 1), 0) FROM river_job WHERE id = $1`, id42).Scan(&errs)
		return errs == 1, err
	})
	_, err = b.store.GetTherapyStatistics(b.ctx, 42, 2026, 11)
	require.ErrorIs(t, err, store.ErrNotFound)
	var lastError string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT last_error FROM therapy_batch_log WHERE job_id = $1`, id42).Scan(&lastError))
	require.Contains(t, lastError, "injected failure for user 42")
	b.unfailUser(t, 42)

	// Every other user succeeded on the first attempt, whatever batch they
	// shared with user 42; user 42 succeeds on its retry.
	b.waitIdle(t)
	var otherAttempts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT max(attempts) FROM therapy_batch_log WHERE job_id <> $1`, id42).Scan(&otherAttempts))
	require.Equal(t, 1, otherAttempts)
	b.waitJob(t, id42, "completed")
	got, err := b.store.GetTherapyStatistics(b.ctx, 42, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 1, got.PerformCount)
	var attempts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT attempts FROM therapy_batch_log WHERE job_id = $1`, id42).Scan(&attempts))
	require.Equal(t, 2, attempts)
	require.Equal(t, map[string]int{"SUCCESS": 200}, b.statusCounts(t))
}

func TestTherapyBatchLogStatuses(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 3, kstAt(2026, 11, 5, 12, 0))
	b.failUser(t, 2)

	ok, err := b.client.Insert(b.ctx, jobs.TherapyStatsArgs{TherapyUserID: 1, Year: 2026, Month: 11, BusinessDate: "2026-11-21"}, nil)
	require.NoError(t, err)
	failing, err := b.client.Insert(b.ctx, jobs.TherapyStatsArgs{TherapyUserID: 2, Year: 2026, Month: 11, BusinessDate: "2026-11-21"},
		&river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)
	later, err := b.client.Insert(b.ctx, jobs.TherapyStatsArgs{TherapyUserID: 3, Year: 2026, Month: 11, BusinessDate: "2026-11-21"},
		&river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	b.waitJob(t, ok.Job.ID, "completed")
	b.waitJob(t, failing.Job.ID, "discarded")

	type row struct {
		Status    string
		Attempts  int
		Finished  bool
		LastError *string
	}
	get := func(id int64) row {
		var r row
		require.NoError(t, b.pool.QueryRow(b.ctx, `
			SELECT status, attempts, finished_at IS NOT NULL, last_error FROM therapy_batch_log WHERE job_id = $1`, id).
			Scan(&r.Status, &r.Attempts, &r.Finished, &r.LastError))
		return r
	}
	require.Equal(t, row{Status: "SUCCESS", Attempts: 1, Finished: true}, get(ok.Job.ID))
	f := get(failing.Job.ID)
	require.Equal(t, "FAIL", f.Status)
	require.True(t, f.Finished)
	require.Contains(t, *f.LastError, "injected failure for user 2")
	require.Equal(t, row{Status: "IN_PROGRESS"}, get(later.Job.ID))

	// A discarded job retried after its cause is fixed becomes SUCCESS.
	b.unfailUser(t, 2)
	_, err = b.client.JobRetry(b.ctx, failing.Job.ID)
	require.NoError(t, err)
	b.waitJob(t, failing.Job.ID, "completed")
	require.Equal(t, "SUCCESS", get(failing.Job.ID).Status)
}

func seq(first, last int64) []int64 {
	var out []int64
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

// No worker ran across the month boundary: the first run after it (3
// December) also enqueues the missed 1 December run, which finalises November
// with the rows that arrived after November's last aggregation.
func TestTherapyDailyCatchesUpMissedMonthFinalisation(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 3, kstAt(2026, 11, 10, 9, 0))
	nov, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-11-29"}, nil)
	require.NoError(t, err)
	b.waitJob(t, nov.Job.ID, "completed")
	b.waitIdle(t)
	// A late November session, then the workers are down from 30 November
	// to 2 December.
	b.exec(t, `INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES (2, $1, 60, true)`,
		kstAt(2026, 11, 30, 23, 30))

	dec3, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-12-03"}, nil)
	require.NoError(t, err)
	b.waitJob(t, dec3.Job.ID, "completed")
	b.waitIdle(t)

	got, err := b.store.GetTherapyStatistics(b.ctx, 2, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 2, got.PerformCount, "November was finalised by the caught-up 1 December run")
	var runs []string
	rows, err := b.pool.Query(b.ctx, `SELECT args->>'business_date' FROM river_job WHERE kind = 'therapy_daily' AND state = 'completed' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		runs = append(runs, d)
	}
	// 29 November also caught up 1 November's run (finalising October) the
	// same way.
	require.Equal(t, []string{"2026-11-01", "2026-11-29", "2026-12-01", "2026-12-03"}, runs)

	// With the 1 December run present, later runs enqueue nothing more.
	dec4, err := b.client.Insert(b.ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-12-04"}, nil)
	require.NoError(t, err)
	b.waitJob(t, dec4.Job.ID, "completed")
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE kind = 'therapy_daily'`).Scan(&n))
	require.Equal(t, 5, n)
}

// A job for a user that does not exist is cancelled at once with a clear
// error (FAIL in the audit view), not retried; its batch-mates succeed.
func TestTherapyStatsUnknownUserIsCancelled(t *testing.T) {
	t.Parallel()
	b := setupTherapy(t)
	b.users(t, 1, 20, kstAt(2026, 11, 5, 12, 0))
	res, err := jobs.EnqueueTherapyStats(b.ctx, b.client, b.store, append(seq(1, 20), 999), 2026, 11, "2026-11-21", jobs.TriggerBackfill, nil)
	require.NoError(t, err)
	require.Equal(t, 21, res.Inserted)
	b.waitIdle(t)

	var status, lastError string
	var attempts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `
		SELECT status, attempts, last_error FROM therapy_batch_log WHERE therapy_user_id = 999`).Scan(&status, &attempts, &lastError))
	require.Equal(t, "FAIL", status)
	require.Equal(t, 1, attempts)
	require.Contains(t, lastError, "unknown therapy user")
	require.Equal(t, map[string]int{"SUCCESS": 20, "FAIL": 1}, b.statusCounts(t))
}

func TestTherapyStatsWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The month's bounds are midnights in BATCH_TZ: a session at 00:10 on
	// 1 November in Seoul is November's (in UTC it is still October).
	t.Run("RecomputesTheUserMonthInBatchTZ", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewTherapyStatsWorker)
		_, err := b.Pool.Exec(ctx, `
			INSERT INTO therapy_user (id, status) VALUES (7, 'ACTIVE');
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
			    (7, '2026-10-31 23:30+09', 600, true),
			    (7, '2026-11-01 00:10+09', 60, true),
			    (7, '2026-11-15 12:00+09', 120, false),
			    (7, '2026-11-15 20:00+09', 30, true),
			    (7, '2026-12-01 00:00+09', 900, true)`)
		require.NoError(t, err)

		b.Work(t, jobs.TherapyStatsArgs{TherapyUserID: 7, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, river.EventKindJobCompleted)

		got, err := b.Store.GetTherapyStatistics(ctx, 7, 2026, 11)
		require.NoError(t, err)
		require.Equal(t, []int64{3, 2, 210, 2}, []int64{int64(got.PerformCount), int64(got.CompletedCount), got.TotalDurationSeconds, int64(got.ActiveDays)})
		require.True(t, got.FirstPerformedAt.Equal(kstAt(2026, 11, 1, 0, 10)), "first %s", got.FirstPerformedAt)
		require.True(t, got.LastPerformedAt.Equal(kstAt(2026, 11, 15, 20, 0)), "last %s", got.LastPerformedAt)
	})

	// No retry can make a missing user exist, nor a month 13: the job is
	// cancelled at once, with the reason, and writes nothing.
	t.Run("RefusedArgsCancel", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewTherapyStatsWorker)
		b.RequireCancelled(t, jobs.TherapyStatsArgs{TherapyUserID: 404, Year: 2026, Month: 11, BusinessDate: "2026-12-01"},
			store.ErrUnknownTherapyUser.Error())
		_, err := b.Store.GetTherapyStatistics(ctx, 404, 2026, 11)
		require.ErrorIs(t, err, store.ErrNotFound)
		b.RequireCancelled(t, jobs.TherapyStatsArgs{TherapyUserID: 7, Year: 2026, Month: 13, BusinessDate: "2026-12-01"},
			"invalid args user 7 2026-13")
	})
}

func TestTherapyDailyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The run on 1 December aggregates November (in BATCH_TZ): one
	// therapy_stats job per ACTIVE user with November sessions, none for an
	// inactive user or for December's sessions, and its counts as output.
	t.Run("FansOutLastMonthsUsers", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewTherapyDailyWorker)
		_, err := b.Pool.Exec(ctx, `
			INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE'), (3, 'INACTIVE'), (4, 'ACTIVE');
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
			    (1, '2026-11-30 23:30+09', 60, true),
			    (2, '2026-11-02 10:00+09', 60, true),
			    (3, '2026-11-02 10:00+09', 60, true),
			    (4, '2026-12-01 00:10+09', 60, true)`)
		require.NoError(t, err)

		res := b.Work(t, jobs.TherapyDailyArgs{BusinessDate: "2026-12-01"}, river.EventKindJobCompleted)

		require.Equal(t, jobs.TherapyDailyOutput{Year: 2026, Month: 11, Targets: 2, Inserted: 2}, jobs.OutputOf[jobs.TherapyDailyOutput](t, res.Job))
		inserted := rivertest.RequireManyInserted(ctx, t, b.Driver, []rivertest.ExpectedJob{
			{Args: jobs.TherapyStatsArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: "therapy"}},
			{Args: jobs.TherapyStatsArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: "therapy"}},
		})
		for i, user := range []int64{1, 2} {
			var args jobs.TherapyStatsArgs
			require.NoError(t, json.Unmarshal(inserted[i].EncodedArgs, &args))
			require.Equal(t, jobs.TherapyStatsArgs{TherapyUserID: user, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, args)
		}
	})

	// A run after the first of the month also enqueues the first's run, in
	// case no worker ran that day to finalise the month before.
	t.Run("EnqueuesAMissedFirstOfMonth", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewTherapyDailyWorker)

		b.Work(t, jobs.TherapyDailyArgs{BusinessDate: "2026-12-05"}, river.EventKindJobCompleted)
		first := rivertest.RequireInserted(ctx, t, b.Driver, &jobs.TherapyDailyArgs{}, nil)
		require.Equal(t, "2026-12-01", first.Args.BusinessDate)
	})

	t.Run("BadDateCancels", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewTherapyDailyWorker)
		b.RequireCancelled(t, jobs.TherapyDailyArgs{BusinessDate: "2026-13-01"}, `business date "2026-13-01": want YYYY-MM-DD`)
	})
}

func TestTherapyStatsVerifyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// setup aggregates November for users 1 and 2, then makes user 2's row
	// drift from its sessions, as a lost write or a hand edit would.
	setup := func(t *testing.T) *jobs.WorkerBundle[jobs.TherapyStatsVerifyArgs] {
		t.Helper()
		b := jobs.SetupWorker(t, jobs.NewTherapyStatsVerifyWorker)
		_, err := b.Pool.Exec(ctx, `
			INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE');
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
			    (1, '2026-11-02 10:00+09', 60, true), (2, '2026-11-02 10:00+09', 60, true)`)
		require.NoError(t, err)
		require.NoError(t, b.Store.AggregateTherapy(ctx, []store.TherapyKey{
			store.NewTherapyKey(1, 2026, 11, seoul), store.NewTherapyKey(2, 2026, 11, seoul)}, seoul))
		_, err = b.Pool.Exec(ctx, `UPDATE therapy_statistics SET perform_count = 5 WHERE therapy_user_id = 2`)
		require.NoError(t, err)
		return b
	}

	// The drifted row is reported and its aggregation enqueued again, with a
	// recover id of its own so that today's earlier run does not skip it.
	t.Run("ReenqueuesTheDriftedRow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		res := b.Work(t, jobs.TherapyStatsVerifyArgs{}, river.EventKindJobCompleted)
		rep := jobs.OutputOf[jobs.TherapyVerifyReport](t, res.Job)
		require.Equal(t, []int{2, 1, 1}, []int{rep.Checked, rep.Drifted, rep.Reenqueued})
		require.Equal(t, []int{5, 1}, []int{rep.Drifts[0].StoredCount, rep.Drifts[0].ActualCount})

		job := rivertest.RequireInserted(ctx, t, b.Driver, &jobs.TherapyStatsArgs{}, nil)
		require.Equal(t, []int64{rep.JobIDs[0], 2, 2026, 11}, []int64{job.ID, job.Args.TherapyUserID, int64(job.Args.Year), int64(job.Args.Month)})
		require.Equal(t, jobs.TriggerVerify, job.Args.Trigger)
		require.True(t, strings.HasPrefix(job.Args.RecoverID, "verify:"), job.Args.RecoverID)
	})

	t.Run("DryRunEnqueuesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		res := b.Work(t, jobs.TherapyStatsVerifyArgs{DryRun: true}, river.EventKindJobCompleted)
		rep := jobs.OutputOf[jobs.TherapyVerifyReport](t, res.Job)
		require.Equal(t, []int{2, 1, 0}, []int{rep.Checked, rep.Drifted, rep.Reenqueued})
		rivertest.RequireNotInserted(ctx, t, b.Driver, &jobs.TherapyStatsArgs{}, nil)
	})
}
