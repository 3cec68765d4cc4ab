package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/joblog"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

var kst = testkit.TZ()

type settleBundle struct {
	pool   *pgxpool.Pool
	st     *store.Store
	client *jobs.Client
	deps   jobs.Deps
}

type settleOpts struct {
	budget     time.Duration
	afterChunk func(context.Context, jobs.SettlementCursor)
	noStart    bool // an insert-only client: jobs stay queued
	// fence installs the attempt fence (as jobs.NewClient does), its stale
	// attempts waiting at most staleWait for their job to settle.
	fence     bool
	staleWait time.Duration
}

func setup(t *testing.T, o settleOpts) *settleBundle {
	t.Helper()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	deps := jobs.Deps{Store: st, TZ: kst, Logger: testkit.Logger(t)}
	cfg := &river.Config{Logger: deps.Logger, MaxAttempts: 5, TestOnly: true,
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}
	if o.fence {
		cfg.Middleware = append(joblog.Middleware(), jobs.NewFenceForTest(deps, o.staleWait))
	}
	if !o.noStart {
		workers := river.NewWorkers()
		river.AddWorker(workers, jobs.NewPointSettlementWorkerForTest(deps, o.budget, o.afterChunk))
		river.AddWorker(workers, jobs.NewPointSettlementDailyWorker(deps))
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	require.NoError(t, err)
	if !o.noStart {
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = client.Stop(sctx)
		})
	}
	return &settleBundle{pool: pool, st: st, client: client, deps: deps}
}

// at is a KST wall-clock time "2026-03-09 12:00".
func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, kst)
	if err != nil {
		panic(err)
	}
	return t
}

func entry(member int64, kind string, amount int64, occurred string) store.LedgerEntry {
	return store.LedgerEntry{MemberID: member, Kind: kind, Amount: amount, OccurredAt: at(occurred)}
}

func (b *settleBundle) ledger(t *testing.T, entries ...store.LedgerEntry) []int64 {
	t.Helper()
	ids, err := b.st.InsertLedger(context.Background(), entries, kst)
	require.NoError(t, err)
	return ids
}

// run starts a run for date and waits for it to finish.
func (b *settleBundle) run(t *testing.T, date string, opts jobs.SettlementRunOpts) *rivertype.JobRow {
	t.Helper()
	job, err := jobs.EnqueueSettlement(context.Background(), b.client, b.st, date, opts)
	require.NoError(t, err)
	return b.waitFinal(t, job.ID)
}

// runPastSkipLimit runs the 10th in chunks of three with skip limit limit,
// which the run's skips exceed: the run is cancelled.
func (b *settleBundle) runPastSkipLimit(t *testing.T, limit int) *rivertype.JobRow {
	t.Helper()
	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 3, SkipLimit: &limit})
	require.Equal(t, rivertype.JobStateCancelled, job.State)
	return job
}

func (b *settleBundle) waitFinal(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	return b.waitFinalWithin(t, id, 60*time.Second)
}

func (b *settleBundle) waitFinalWithin(t *testing.T, id int64, timeout time.Duration) *rivertype.JobRow {
	t.Helper()
	var job *rivertype.JobRow
	testkit.WaitFor(t, timeout, fmt.Sprintf("job %d finalized", id), func() (bool, error) {
		var err error
		job, err = b.client.JobGet(context.Background(), id)
		if err != nil {
			return false, err
		}
		if job.FinalizedAt == nil {
			return false, fmt.Errorf("still %s: %v", job.State, job.Errors)
		}
		return true, nil
	})
	return job
}

func output(t *testing.T, job *rivertype.JobRow) jobs.SettlementOutput {
	t.Helper()
	return jobs.OutputOf[jobs.SettlementOutput](t, job)
}

func (b *settleBundle) ids(t *testing.T, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	var out []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

func (b *settleBundle) batchIDs(t *testing.T, date string) []int64 {
	return b.ids(t, `SELECT ledger_id FROM daily_batch WHERE run_date = $1::date ORDER BY ledger_id`, date)
}

func (b *settleBundle) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	return testkit.Count(t, b.pool, sql, args...)
}

// directSums sums, straight from point_ledger, what the run of date must have
// settled: the rows processed on date that were not skipped.
func (b *settleBundle) directSums(t *testing.T, date string) (earned, used, expired, n int64) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT coalesce(sum(amount) FILTER (WHERE kind = 'EARN'), 0), coalesce(sum(amount) FILTER (WHERE kind = 'USE'), 0),
		       coalesce(sum(amount) FILTER (WHERE kind = 'EXPIRE'), 0), count(*)
		FROM point_ledger l WHERE processed_on = $1::date
		  AND NOT EXISTS (SELECT 1 FROM settlement_skip s WHERE s.run_date = $1::date AND s.ledger_id = l.id)`,
		date).Scan(&earned, &used, &expired, &n))
	return
}

func (b *settleBundle) requireSettledAsLedger(t *testing.T, date string) store.Settlement {
	t.Helper()
	st, err := b.st.GetSettlement(context.Background(), date)
	require.NoError(t, err)
	e, u, x, n := b.directSums(t, date)
	require.Equal(t, []int64{e, u, x, n}, []int64{st.Earned, st.Used, st.Expired, int64(st.ItemCount)}, "settlement of %s vs direct SQL sum", date)
	return st
}

func TestSettlementCollectsDueRowsAndSettles(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	ids := b.ledger(t,
		entry(1, "EARN", 1000, "2026-03-09 00:10"), // process_on 2026-03-10
		entry(1, "USE", 300, "2026-03-09 23:30"),   // 14:30 UTC, still the 9th in KST
		entry(2, "EARN", 500, "2026-03-08 12:00"),  // process_on the 9th: a missed day, still due on the 10th
		entry(2, "EXPIRE", 50, "2026-03-09 13:00"),
		entry(3, "EARN", 70, "2026-03-10 00:05"), // the 10th itself: due on the 11th
	)
	rows, err := b.st.GetLedgerRows(context.Background(), ids)
	require.NoError(t, err)
	require.Equal(t, []string{"2026-03-10", "2026-03-10", "2026-03-09", "2026-03-10", "2026-03-11"},
		[]string{rows[0].ProcessOn, rows[1].ProcessOn, rows[2].ProcessOn, rows[3].ProcessOn, rows[4].ProcessOn})

	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 2})
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Equal(t, ids[:4], b.batchIDs(t, "2026-03-10"))
	st := b.requireSettledAsLedger(t, "2026-03-10")
	require.Equal(t, store.Settlement{RunDate: "2026-03-10", Earned: 1500, Used: 300, Expired: 50, ItemCount: 4, JobID: job.ID, Run: 1},
		store.Settlement{RunDate: st.RunDate, Earned: st.Earned, Used: st.Used, Expired: st.Expired, ItemCount: st.ItemCount, JobID: st.JobID, Run: st.Run})

	out := output(t, job)
	require.Equal(t, jobs.SettlementCounts{Read: 4, Written: 4, Chunks: 2}, out.SettlementCounts)

	// The audit view shows the run as Spring Batch would.
	var status, params string
	var read, write, skip, commits, rollbacks int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT status, identifying_params::text, read_count, write_count, skip_count, commit_count, rollback_count
		FROM batch_job_execution WHERE job_execution_id = $1`, job.ID).
		Scan(&status, &params, &read, &write, &skip, &commits, &rollbacks))
	require.Equal(t, "COMPLETED", status)
	require.JSONEq(t, `{"run_date":"2026-03-10","run":1}`, params)
	require.Equal(t, []int64{4, 4, 0, 2, 0}, []int64{read, write, skip, commits, rollbacks})
}

func TestSettlementMissedDaysCaughtUpOnceEach(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	ctx := context.Background()
	// Last completed run: the 6th. The worker then missed the 7th, 8th and 9th.
	b.ledger(t, entry(1, "EARN", 1, "2026-03-05 10:00"))
	b.run(t, "2026-03-06", jobs.SettlementRunOpts{})
	days := map[string]int64{}
	for i, d := range []string{"2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"} {
		occurred, _ := calendar.ParseDate(d)
		ids := b.ledger(t, store.LedgerEntry{MemberID: 1, Kind: "EARN", Amount: int64(10 * (i + 1)),
			OccurredAt: time.Date(occurred.Year(), occurred.Month(), occurred.Day()-1, 12, 0, 0, 0, kst)})
		days[d] = ids[0]
	}

	res, err := b.client.Insert(ctx, jobs.PointSettlementDailyArgs{BusinessDate: "2026-03-10"}, nil)
	require.NoError(t, err)
	b.waitFinal(t, res.Job.ID)
	// The chain runs the missed days oldest first; wait for the last one.
	testkit.WaitFor(t, 60*time.Second, "2026-03-10 settled", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM point_daily_settlement WHERE run_date = '2026-03-10'`) > 0, nil
	})
	for _, id := range b.ids(t, `SELECT id FROM river_job WHERE kind = 'point_settlement'`) {
		require.Equal(t, rivertype.JobStateCompleted, b.waitFinal(t, id).State)
	}

	// Each date ran exactly once, and each row was settled on its own day.
	var runs []string
	rows, err := b.pool.Query(ctx, `SELECT args->>'run_date' || ' ' || (args->>'run') FROM river_job WHERE kind = 'point_settlement' ORDER BY args->>'run_date'`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		runs = append(runs, s)
	}
	require.Equal(t, []string{"2026-03-06 1", "2026-03-07 1", "2026-03-08 1", "2026-03-09 1", "2026-03-10 1"}, runs)
	for d, id := range days {
		require.Equal(t, []int64{id}, b.batchIDs(t, d), "run %s", d)
		b.requireSettledAsLedger(t, d)
	}

	// Asked again (a second trigger, a restarted leader), nothing more starts.
	out, err := jobs.CatchUpSettlements(ctx, b.client, b.st, "2026-03-10")
	require.NoError(t, err)
	require.Empty(t, out.Started)
	again, err := b.client.Insert(ctx, jobs.PointSettlementDailyArgs{BusinessDate: "2026-03-10"}, nil)
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate)
	require.Equal(t, int64(5), b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'point_settlement'`))
}

func TestSettlementReprocessedSixMonthOldRowIsCollected(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	ctx := context.Background()
	old := b.ledger(t, entry(7, "EARN", 4200, "2026-03-01 09:00"))[0]
	b.run(t, "2026-03-02", jobs.SettlementRunOpts{})
	require.Equal(t, []int64{old}, b.batchIDs(t, "2026-03-02"))
	// Six months of settled rows pile up after it.
	var settled []store.LedgerEntry
	for i := range 300 {
		e := entry(8, "EARN", 1, "2026-03-03 10:00")
		e.OccurredAt = e.OccurredAt.AddDate(0, 0, i%180)
		settled = append(settled, e)
	}
	b.ledger(t, settled...)
	_, err := b.pool.Exec(ctx, `UPDATE point_ledger SET processed_on = process_on WHERE member_id = 8`)
	require.NoError(t, err)

	require.NoError(t, b.st.ReprocessLedger(ctx, []int64{old}, "2026-09-05"))
	// Not due before its new date.
	b.run(t, "2026-09-04", jobs.SettlementRunOpts{})
	require.Empty(t, b.batchIDs(t, "2026-09-04"))
	job := b.run(t, "2026-09-05", jobs.SettlementRunOpts{})
	require.Equal(t, []int64{old}, b.batchIDs(t, "2026-09-05"))
	require.Equal(t, int64(1), output(t, job).Read)
	st := b.requireSettledAsLedger(t, "2026-09-05")
	require.Equal(t, int64(4200), st.Earned)
	// The first settlement keeps it too: daily_batch is history per run date.
	require.Equal(t, []int64{old}, b.batchIDs(t, "2026-03-02"))
}

func TestSettlementRowInsertedDuringStep1WaitsForNextRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var late []int64
	var once sync.Once
	var b *settleBundle
	b = setup(t, settleOpts{afterChunk: func(ctx context.Context, cur jobs.SettlementCursor) {
		once.Do(func() {
			ids, err := b.st.InsertLedger(ctx, []store.LedgerEntry{entry(1, "EARN", 99, "2026-03-09 22:00")}, kst)
			if err == nil {
				late = ids
			}
		})
	}})
	var entries []store.LedgerEntry
	for range 6 {
		entries = append(entries, entry(1, "EARN", 10, "2026-03-09 10:00"))
	}
	ids := b.ledger(t, entries...)
	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 2})
	require.Len(t, late, 1)
	require.Equal(t, ids, b.batchIDs(t, "2026-03-10"), "the late row is not collected by the run it arrived in")
	require.Equal(t, int64(3), output(t, job).Chunks)
	rows, err := b.st.GetLedgerRows(ctx, late)
	require.NoError(t, err)
	require.Nil(t, rows[0].ProcessedOn)
	require.Equal(t, "2026-03-10", rows[0].ProcessOn)

	b.run(t, "2026-03-11", jobs.SettlementRunOpts{})
	require.Equal(t, late, b.batchIDs(t, "2026-03-11"))
}

func TestSettlementNotReadyRowWaitsUntilReady(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	ctx := context.Background()
	waiting := store.LedgerEntry{MemberID: 1, Kind: "EARN", Amount: 500, OccurredAt: at("2026-03-09 10:00"), NotReady: true}
	ids := b.ledger(t, entry(1, "EARN", 5, "2026-03-09 09:00"), waiting)

	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{})
	require.Equal(t, ids[:1], b.batchIDs(t, "2026-03-10"))
	require.Equal(t, jobs.SettlementCounts{Read: 2, Written: 1, NotReady: 1, Chunks: 1}, output(t, job).SettlementCounts)

	job = b.run(t, "2026-03-11", jobs.SettlementRunOpts{}) // still not ready
	require.Equal(t, int64(1), output(t, job).NotReady)
	require.Empty(t, b.batchIDs(t, "2026-03-11"))

	n, err := b.st.MarkLedgerReady(ctx, ids[1:])
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	job = b.run(t, "2026-03-12", jobs.SettlementRunOpts{}) // the day after it became ready
	require.Equal(t, ids[1:], b.batchIDs(t, "2026-03-12"))
	require.Equal(t, jobs.SettlementCounts{Read: 1, Written: 1, Chunks: 1}, output(t, job).SettlementCounts)
	b.requireSettledAsLedger(t, "2026-03-12")
}

func TestSettlementSkipLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	ctx := context.Background()
	// Member 2 uses points it never earned: three rows the worker rejects,
	// one in the first chunk of three, two in the second.
	ids := b.ledger(t,
		entry(1, "EARN", 100, "2026-03-09 08:00"), entry(1, "USE", 40, "2026-03-09 09:00"), entry(2, "USE", 1, "2026-03-09 09:00"),
		entry(2, "USE", 2, "2026-03-09 09:01"), entry(2, "USE", 3, "2026-03-09 09:02"), entry(1, "EARN", 7, "2026-03-09 10:00"),
	)

	job := b.runPastSkipLimit(t, 2)
	require.Contains(t, job.Errors[len(job.Errors)-1].Error, fmt.Sprintf("skip limit exceeded: row %d is skip 3, limit 2", ids[4]))
	// The first chunk committed (one skip recorded); the failing one rolled back.
	require.Equal(t, ids[:2], b.batchIDs(t, "2026-03-10"))
	require.Equal(t, ids[2:3], b.ids(t, `SELECT ledger_id FROM settlement_skip WHERE run_date = '2026-03-10'`))
	require.Equal(t, int64(3), b.count(t, `SELECT count(*) FROM point_ledger WHERE processed_on IS NULL`))
	out := output(t, job)
	require.Equal(t, jobs.SettlementCounts{Read: 3, Written: 2, Skipped: 1, Chunks: 1, Rollbacks: 1}, out.SettlementCounts)
	_, err := b.st.GetSettlement(ctx, "2026-03-10")
	require.ErrorIs(t, err, store.ErrNotFound)
	var status string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT status FROM batch_job_execution WHERE job_execution_id = $1`, job.ID).Scan(&status))
	require.Equal(t, "STOPPED", status)

	// A failed run is not a completed one: a new run for the date may start,
	// and with a higher limit it settles, skipping the rest.
	limit := 5
	job = b.run(t, "2026-03-10", jobs.SettlementRunOpts{SkipLimit: &limit})
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Equal(t, jobs.SettlementCounts{Read: 3, Written: 1, Skipped: 2, Chunks: 1}, output(t, job).SettlementCounts)
	require.Equal(t, []int64{ids[0], ids[1], ids[5]}, b.batchIDs(t, "2026-03-10"))
	require.Equal(t, ids[2:5], b.ids(t, `SELECT ledger_id FROM settlement_skip WHERE run_date = '2026-03-10' ORDER BY ledger_id`))
	st := b.requireSettledAsLedger(t, "2026-03-10")
	require.Equal(t, []int64{107, 40, 2}, []int64{st.Earned, st.Used, int64(st.Run)})
}

func TestSettlementResumesFromCursorAcrossAttempts(t *testing.T) {
	t.Parallel()
	// A budget of a nanosecond: every attempt commits one chunk and snoozes,
	// and the next attempt resumes from the cursor saved with that chunk.
	b := setup(t, settleOpts{budget: time.Nanosecond})
	var entries []store.LedgerEntry
	for i := range 10 {
		entries = append(entries, entry(int64(i%3), "EARN", int64(i+1), "2026-03-09 10:00"))
	}
	ids := b.ledger(t, entries...)
	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 3})
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Equal(t, ids, b.batchIDs(t, "2026-03-10"))
	require.Equal(t, jobs.SettlementCounts{Read: 10, Written: 10, Chunks: 4}, output(t, job).SettlementCounts)
	var snoozes int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT (metadata->>'snoozes')::int FROM river_job WHERE id = $1`, job.ID).Scan(&snoozes))
	require.Equal(t, 4, snoozes) // the last attempt only finds nothing left
	// Each chunk was committed by a different attempt.
	require.Equal(t, int64(4), b.count(t, `SELECT count(DISTINCT processed_at) FROM daily_batch WHERE run_date = '2026-03-10'`))
	b.requireSettledAsLedger(t, "2026-03-10")
}

func TestSettlementRefusesDuplicateAndConcurrentRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, settleOpts{noStart: true})
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		jobIDs := make([]int64, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				job, err := jobs.EnqueueSettlement(ctx, b.client, b.st, "2026-03-10", jobs.SettlementRunOpts{})
				errs[i] = err
				if job != nil {
					jobIDs[i] = job.ID
				}
			}()
		}
		wg.Wait()
		var started int64
		for i := range n {
			if errs[i] == nil {
				require.Zero(t, started, "two runs started")
				started = jobIDs[i]
			}
		}
		require.NotZero(t, started)
		for _, err := range errs {
			if err != nil {
				require.EqualError(t, err, fmt.Sprintf("point_settlement 2026-03-10: already queued as job %d (available); wait for it to finish", started))
			}
		}
		require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'point_settlement'`))
	})

	t.Run("CompletedAndRerun", func(t *testing.T) {
		t.Parallel()
		b := setup(t, settleOpts{})
		first := b.ledger(t, entry(1, "EARN", 10, "2026-03-09 10:00"))
		job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{})
		_, err := jobs.EnqueueSettlement(ctx, b.client, b.st, "2026-03-10", jobs.SettlementRunOpts{})
		require.ErrorContains(t, err, fmt.Sprintf("point_settlement 2026-03-10: already completed as job %d at ", job.ID))
		require.ErrorContains(t, err, "; use --rerun to run it again")
		var completed *jobs.RunCompletedError
		require.ErrorAs(t, err, &completed)
		require.ErrorIs(t, err, jobs.ErrAlreadyRan)

		// A row due on the 10th arrives after the run (a late writer); the
		// rerun collects it and recomputes the date from daily_batch.
		late := b.ledger(t, store.LedgerEntry{MemberID: 1, Kind: "USE", Amount: 4, OccurredAt: at("2026-03-09 11:00"), ProcessOn: "2026-03-10"})
		rerun := b.run(t, "2026-03-10", jobs.SettlementRunOpts{Rerun: true})
		require.Equal(t, rivertype.JobStateCompleted, rerun.State)
		require.Equal(t, append(first, late...), b.batchIDs(t, "2026-03-10"))
		out := output(t, rerun)
		require.Equal(t, 2, out.Run)
		require.Equal(t, int64(1), out.Written)
		st := b.requireSettledAsLedger(t, "2026-03-10")
		require.Equal(t, []int64{10, 4, 2, rerun.ID, 2}, []int64{st.Earned, st.Used, int64(st.ItemCount), st.JobID, int64(st.Run)})

		_, err = jobs.EnqueueSettlement(ctx, b.client, b.st, "2026-03-10", jobs.SettlementRunOpts{})
		require.ErrorContains(t, err, fmt.Sprintf("point_settlement 2026-03-10: already completed as job %d at ", rerun.ID))
	})

	t.Run("Running", func(t *testing.T) {
		t.Parallel()
		chunked, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		b := setup(t, settleOpts{afterChunk: func(ctx context.Context, _ jobs.SettlementCursor) {
			once.Do(func() { close(chunked); <-release })
		}})
		b.ledger(t, entry(1, "EARN", 10, "2026-03-09 10:00"), entry(1, "EARN", 10, "2026-03-09 10:00"))
		job, err := jobs.EnqueueSettlement(ctx, b.client, b.st, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 1})
		require.NoError(t, err)
		select {
		case <-chunked: // the run is running, its first chunk committed
		case <-time.After(30 * time.Second):
			require.FailNow(t, "the run committed no chunk within 30s")
		}
		for _, rerun := range []bool{false, true} {
			_, err = jobs.EnqueueSettlement(ctx, b.client, b.st, "2026-03-10", jobs.SettlementRunOpts{Rerun: rerun})
			require.EqualError(t, err, fmt.Sprintf("point_settlement 2026-03-10: already running as job %d; wait for it to finish", job.ID))
			require.ErrorIs(t, err, jobs.ErrAlreadyRan)
			var active *jobs.RunActiveError
			require.True(t, errors.As(err, &active))
		}
		close(release)
		require.Equal(t, rivertype.JobStateCompleted, b.waitFinal(t, job.ID).State)
	})
}

func TestLedgerProcessOnDefault(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{noStart: true})
	ctx := context.Background()
	// 2026-11-20 15:30 UTC is 2026-11-21 00:30 in Seoul.
	occurred := time.Date(2026, 11, 20, 15, 30, 0, 0, time.UTC)
	ids, err := b.st.InsertLedger(ctx, []store.LedgerEntry{{MemberID: 1, Kind: "EARN", Amount: 1, OccurredAt: occurred}}, kst)
	require.NoError(t, err)
	utcIDs, err := b.st.InsertLedger(ctx, []store.LedgerEntry{{MemberID: 1, Kind: "EARN", Amount: 1, OccurredAt: occurred}}, time.UTC)
	require.NoError(t, err)
	// A writer that leaves process_on out gets the trigger's default: the
	// zone in tidemark.batch_tz, else Asia/Seoul.
	var viaTrigger, viaSetting string
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO point_ledger (member_id, kind, amount, occurred_at) VALUES (1, 'EARN', 1, $1) RETURNING process_on::text`, occurred).Scan(&viaTrigger))
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `SET tidemark.batch_tz = 'UTC'`)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO point_ledger (member_id, kind, amount, occurred_at) VALUES (1, 'EARN', 1, $1) RETURNING process_on::text`, occurred).Scan(&viaSetting))
	_, err = conn.Exec(ctx, `RESET tidemark.batch_tz`)
	require.NoError(t, err)

	rows, err := b.st.GetLedgerRows(ctx, append(ids, utcIDs...))
	require.NoError(t, err)
	require.Equal(t, []string{"2026-11-22", "2026-11-21", "2026-11-22", "2026-11-21"},
		[]string{rows[0].ProcessOn, rows[1].ProcessOn, viaTrigger, viaSetting})
}

func TestSettlementRetryAfterSkipLimitResumesFromCursor(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	// One skip in the first chunk of three, two more in the second.
	ids := b.ledger(t,
		entry(1, "EARN", 100, "2026-03-09 08:00"), entry(2, "USE", 1, "2026-03-09 09:00"), entry(1, "EARN", 5, "2026-03-09 09:30"),
		entry(2, "USE", 2, "2026-03-09 10:00"), entry(2, "USE", 3, "2026-03-09 10:01"),
	)
	job := b.runPastSkipLimit(t, 1)
	require.Equal(t, []int64{ids[0], ids[2]}, b.batchIDs(t, "2026-03-10")) // first chunk; ids[1] skipped

	// The operator records member 2's missing EARN (it occurred before the
	// USE rows, process_on far ahead so no run collects it now) and restarts
	// the failed run, which resumes after its last committed chunk.
	b.ledger(t, store.LedgerEntry{MemberID: 2, Kind: "EARN", Amount: 50, OccurredAt: at("2026-03-09 07:00"), ProcessOn: "2026-12-31"})
	_, err := b.client.JobRetry(context.Background(), job.ID)
	require.NoError(t, err)
	job = b.waitFinal(t, job.ID)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Equal(t, []int64{ids[0], ids[2], ids[3], ids[4]}, b.batchIDs(t, "2026-03-10"))
	require.Equal(t, ids[1:2], b.ids(t, `SELECT ledger_id FROM settlement_skip`))
	require.Equal(t, jobs.SettlementCounts{Read: 5, Written: 4, Skipped: 1, Chunks: 2, Rollbacks: 1}, output(t, job).SettlementCounts)
	b.requireSettledAsLedger(t, "2026-03-10")
}

func TestSettlementDeferredRowWaitsForItsDate(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{})
	ctx := context.Background()
	ids := b.ledger(t, entry(1, "EARN", 10, "2026-03-09 10:00"), entry(1, "EARN", 20, "2026-03-09 11:00"))
	require.NoError(t, b.st.DeferLedger(ctx, ids[1:], "2026-03-12"))
	b.run(t, "2026-03-10", jobs.SettlementRunOpts{})
	b.run(t, "2026-03-11", jobs.SettlementRunOpts{})
	require.Equal(t, ids[:1], b.batchIDs(t, "2026-03-10"))
	require.Empty(t, b.batchIDs(t, "2026-03-11"))
	b.run(t, "2026-03-12", jobs.SettlementRunOpts{})
	require.Equal(t, ids[1:], b.batchIDs(t, "2026-03-12"))
	b.requireSettledAsLedger(t, "2026-03-12")
}

func TestCatchUpWaitsForAnActiveRun(t *testing.T) {
	t.Parallel()
	b := setup(t, settleOpts{noStart: true})
	ctx := context.Background()
	// An operator's run for the 9th is queued; the nightly trigger for the
	// 10th must not start the 10th before it, nor start the 9th again.
	queued, err := jobs.EnqueueSettlement(ctx, b.client, b.st, "2026-03-09", jobs.SettlementRunOpts{})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO point_daily_settlement VALUES ('2026-03-08', 0, 0, 0, 0, now(), 1, 1)`)
	require.NoError(t, err)
	out, err := jobs.CatchUpSettlements(ctx, b.client, b.st, "2026-03-10")
	require.NoError(t, err)
	require.Equal(t, jobs.SettlementDailyOutput{LastSettled: "2026-03-08", Missing: []string{"2026-03-09", "2026-03-10"}, WaitingOn: queued.ID}, out)
	require.Equal(t, int64(1), countJobs(t, b, "point_settlement"))
}

func countJobs(t *testing.T, b *settleBundle, kind string) int64 {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM river_job WHERE kind = $1`, kind)
}

// TestSettlementRecordThatDoesNotAddUpFailsTheRun makes the run's rows differ
// from its counts (a row collected under its job that no chunk counted, as a
// lost count would leave it): the run must be cancelled with the numbers and
// the date left unsettled, never completed with a record that contradicts
// itself.
func TestSettlementRecordThatDoesNotAddUpFailsTheRun(t *testing.T) {
	t.Parallel()
	var once sync.Once
	var b *settleBundle
	var hookErr error
	b = setup(t, settleOpts{afterChunk: func(ctx context.Context, cur jobs.SettlementCursor) {
		once.Do(func() {
			_, hookErr = b.pool.Exec(ctx, `
				WITH r AS (
				    UPDATE point_ledger SET processed_on = '2026-03-10'
				    WHERE id = (SELECT max(id) FROM point_ledger) RETURNING id, member_id, kind, amount)
				INSERT INTO daily_batch (run_date, ledger_id, member_id, kind, amount, processed_at, job_id)
				SELECT '2026-03-10', r.id, r.member_id, r.kind, r.amount, now(),
				       (SELECT id FROM river_job WHERE kind = 'point_settlement' AND state = 'running')
				FROM r`)
		})
	}})
	var entries []store.LedgerEntry
	for range 6 {
		entries = append(entries, entry(1, "EARN", 10, "2026-03-09 10:00"))
	}
	b.ledger(t, entries...)
	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 2})
	require.NoError(t, hookErr)
	require.Equal(t, rivertype.JobStateCancelled, job.State)
	require.NotEmpty(t, job.Errors)
	require.Contains(t, job.Errors[len(job.Errors)-1].Error,
		"point_settlement 2026-03-10 run 1: run record does not add up: read 5, written 5, skipped 0, not ready 0; daily_batch holds 6 of its rows")
	_, err := b.st.GetSettlement(context.Background(), "2026-03-10")
	require.ErrorIs(t, err, store.ErrNotFound, "the date must not be settled")
}

// The settlement worker on its own, through rivertest, for the runs it must
// refuse before it writes anything. A run that collects or settles commits its
// cursor and its completion in transactions of its own, which need the job row
// committed and unlocked; rivertest holds it in the test's transaction, so
// those runs are tested above with a River client.
func TestPointSettlementWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("InvalidArgsCancel", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewPointSettlementWorker)
		for _, args := range []jobs.PointSettlementArgs{
			{RunDate: "2026-03-10", Run: 0},
			{RunDate: "2026-3-10", Run: 1},
			{RunDate: "2026-03-10", Run: 1, Until: "tomorrow"},
			{RunDate: "2026-03-10", Run: 1, CommitInterval: jobs.MaxCommitInterval + 1},
		} {
			b.RequireCancelled(t, args, "point_settlement: invalid args")
		}
	})

	// A skip over the limit in the first chunk fails the run for good: no
	// retry can fix the data. The chunk rolls back, so every row stays due for
	// the run that follows the fix, and the record counts the rollback.
	t.Run("SkipLimitCancelsAndLeavesRowsDue", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewPointSettlementWorker)
		ids, err := b.Store.InsertLedger(ctx, []store.LedgerEntry{entry(2, "USE", 5, "2026-03-09 09:00")}, kst)
		require.NoError(t, err)
		limit := 0

		res := b.Work(t, jobs.PointSettlementArgs{RunDate: "2026-03-10", Run: 1, SkipLimit: &limit}, river.EventKindJobCancelled)
		require.Contains(t, res.Job.Errors[0].Error, fmt.Sprintf("skip limit exceeded: row %d is skip 1, limit 0", ids[0]))
		require.Equal(t, jobs.SettlementCounts{Rollbacks: 1}, output(t, res.Job).SettlementCounts)
		rows, err := b.Store.GetLedgerRows(ctx, ids)
		require.NoError(t, err)
		require.Nil(t, rows[0].ProcessedOn, "still due")
	})
}

// The nightly trigger on its own, through rivertest.
func TestPointSettlementDailyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// With nothing ever settled, the night's trigger starts run 1 of its own
	// business date.
	t.Run("StartsTheDatesRun", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewPointSettlementDailyWorker)

		res := b.Work(t, jobs.PointSettlementDailyArgs{BusinessDate: "2026-03-10"}, river.EventKindJobCompleted)
		require.Equal(t, jobs.SettlementDailyOutput{Missing: []string{"2026-03-10"}, Started: "2026-03-10"}, jobs.OutputOf[jobs.SettlementDailyOutput](t, res.Job))
		run := rivertest.RequireInserted(ctx, t, b.Driver, &jobs.PointSettlementArgs{}, nil)
		require.Equal(t, &jobs.PointSettlementArgs{RunDate: "2026-03-10", Run: 1, Until: "2026-03-10", Trigger: jobs.SettlementTriggerDaily}, run.Args)
	})

	// A run of the date already queued (an operator's) is not doubled: the
	// trigger snoozes and looks again.
	t.Run("WaitsForTheQueuedRun", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewPointSettlementDailyWorker)
		client, err := jobs.NewClient(b.Pool, jobs.ClientConfig{}, b.Deps) // insert-only, for a run started outside the job
		require.NoError(t, err)
		queued, err := jobs.EnqueueSettlement(ctx, client, b.Store, "2026-03-10", jobs.SettlementRunOpts{})
		require.NoError(t, err)

		res := b.Work(t, jobs.PointSettlementDailyArgs{BusinessDate: "2026-03-10"}, river.EventKindJobSnoozed)
		require.WithinDuration(t, time.Now().Add(time.Minute), res.Job.ScheduledAt, 10*time.Second)
		require.Equal(t, queued.ID, jobs.OutputOf[jobs.SettlementDailyOutput](t, res.Job).WaitingOn)
		run := rivertest.RequireInserted(ctx, t, b.Driver, &jobs.PointSettlementArgs{}, nil)
		require.Equal(t, queued.ID, run.ID, "still the one run")
	})

	t.Run("BadDateCancels", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewPointSettlementDailyWorker)
		b.RequireCancelled(t, jobs.PointSettlementDailyArgs{BusinessDate: "10/03/2026"}, `date "10/03/2026": want YYYY-MM-DD`)
		rivertest.RequireNotInserted(ctx, t, b.Driver, &jobs.PointSettlementArgs{}, nil)
	})
}

// An attempt whose job a later attempt took over (its worker froze past the
// rescue, then woke) writes nothing more: the chunk after the takeover is
// refused and rolled back, no output or settlement is written, and the
// attempt ends without a trace.
func TestSettlementStaleAttemptWritesNothing(t *testing.T) {
	t.Parallel()
	var st *store.Store
	b := setup(t, settleOpts{fence: true, staleWait: time.Second, afterChunk: func(ctx context.Context, cur jobs.SettlementCursor) {
		if cur.Chunks == 1 {
			// The rescued job's next attempt claims it, as a worker that
			// took it over would.
			id, attempt := jobs.AttemptOfForTest(ctx)
			owned, err := st.ClaimLeases(context.Background(), []store.Attempt{{JobID: id, Attempt: attempt + 1}})
			if err != nil || !owned[id] {
				panic(fmt.Sprint("claim: ", err))
			}
		}
	}})
	st = b.st
	var entries []store.LedgerEntry
	for i := range 9 {
		entries = append(entries, entry(int64(i%3+1), "EARN", int64(i+1), "2026-03-09 10:00"))
	}
	ids := b.ledger(t, entries...)
	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 3})

	require.Equal(t, ids[:3], b.batchIDs(t, "2026-03-10"), "the chunk before the takeover, nothing after")
	require.Equal(t, int64(6), b.count(t, `SELECT count(*) FROM point_ledger WHERE processed_on IS NULL`))
	_, err := b.st.GetSettlement(context.Background(), "2026-03-10")
	require.ErrorIs(t, err, store.ErrNotFound, "no settlement from the stale attempt")
	out := output(t, job)
	require.Zero(t, out.Read, "no counts recorded by the stale attempt")
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE id = $1 AND cardinality(errors) > 0`, job.ID),
		"no error recorded for it")
}
