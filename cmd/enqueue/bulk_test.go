package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
)

// stoppedClock is River's clock stopped at one instant: a client built on it
// enqueues and cancels jobs at that time (created_at, finalized_at), the way
// the jobs of past days were.
type stoppedClock struct{ at time.Time }

func (c stoppedClock) Now() time.Time       { return c.at }
func (c stoppedClock) NowOrNil() *time.Time { return &c.at }

// riverAt is an insert-only River client whose clock stands at at.
func (b *cliBundle) riverAt(t *testing.T, at time.Time) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Logger: testkit.Logger(t), Test: river.TestConfig{Time: stoppedClock{at}}})
	require.NoError(t, err)
	return c
}

// insert enqueues args at the client's clock and returns the job's id.
func insert(t *testing.T, c *river.Client[pgx.Tx], args river.JobArgs, opts *river.InsertOpts) int64 {
	t.Helper()
	res, err := c.Insert(context.Background(), args, opts)
	require.NoError(t, err)
	require.False(t, res.UniqueSkippedAsDuplicate)
	return res.Job.ID
}

// cancelledAt enqueues args a week before at and cancels the job at at.
func (b *cliBundle) cancelledAt(t *testing.T, at time.Time, args river.JobArgs) int64 {
	t.Helper()
	id := insert(t, b.riverAt(t, at.AddDate(0, 0, -7)), args, &river.InsertOpts{Queue: "parked"})
	_, err := b.riverAt(t, at).JobCancel(context.Background(), id)
	require.NoError(t, err)
	return id
}

// workOnce has a worker run each job once (MaxAttempts 1): a therapy_stats
// job fails with its Trigger as the error, or completes when it has none;
// an order_submit job fails as a partner refusing. It returns the jobs' ids
// once River has finished them all, and stops the worker.
func (b *cliBundle) workOnce(t *testing.T, args ...river.JobArgs) []int64 {
	t.Helper()
	ctx := context.Background()
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[jobs.TherapyStatsArgs]) error {
		if j.Args.Trigger != "" {
			return errors.New(j.Args.Trigger)
		}
		return nil
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[jobs.OrderSubmitArgs]) error {
		return errors.New("partner: Connection Refused")
	}))
	c, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Logger: testkit.Logger(t), Workers: workers,
		Queues: map[string]river.QueueConfig{"work": {MaxWorkers: 4}}, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	ids := make([]int64, len(args))
	for i, a := range args {
		ids[i] = insert(t, c, a, &river.InsertOpts{Queue: "work", MaxAttempts: 1})
	}
	testkit.WaitFor(t, 30*time.Second, "the jobs are worked once", func() (bool, error) {
		var left int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id = ANY($1) AND finalized_at IS NULL`, ids).Scan(&left)
		return left == 0, err
	})
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(stop))
	return ids
}

// jobStates is every job's state and finalized_at, by id: what a bulk
// action may change.
func (b *cliBundle) jobStates(t *testing.T) map[int64]string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT id, state::text || ' ' || coalesce(finalized_at::text, '-') FROM river_job`)
	require.NoError(t, err)
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var s string
		require.NoError(t, rows.Scan(&id, &s))
		out[id] = s
	}
	require.NoError(t, rows.Err())
	return out
}

func (b *cliBundle) state(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

// enqueueAs runs the CLI as the OS user user.
func (b *cliBundle) enqueueAs(user string, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	getenv := func(k string) string {
		return map[string]string{"DATABASE_URL": b.dbURL, "USER": user}[k]
	}
	code = Main(context.Background(), args, getenv, &o, &e)
	return code, o.String(), e.String()
}

// action is an operator_action row.
type action struct {
	Action         string
	Filter         map[string]any
	Matched, Acted int64
	By             string
	Finished       bool
}

func (b *cliBundle) actions(t *testing.T) []action {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
		SELECT action, filter, matched, acted, coalesce(by, ''), finished_at IS NOT NULL FROM operator_action ORDER BY id`)
	require.NoError(t, err)
	var out []action
	for rows.Next() {
		var a action
		var filter []byte
		require.NoError(t, rows.Scan(&a.Action, &filter, &a.Matched, &a.Acted, &a.By, &a.Finished))
		require.NoError(t, json.Unmarshal(filter, &a.Filter))
		out = append(out, a)
	}
	require.NoError(t, rows.Err())
	return out
}

// changed is the ids whose state or finalized_at differs between two
// snapshots of jobStates.
func changed(before, after map[int64]string) []int64 {
	var ids []int64
	for id, s := range after {
		if before[id] != s {
			ids = append(ids, id)
		}
	}
	return ids
}

func kst(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, testkit.TZ())
}

// A bulk retry re-queues exactly the jobs its filter matches — by kind,
// state, error text and time window — and records each run; its dry run
// counts the same jobs and changes nothing.
func TestRetryByFilter(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	stats := func(user int64, trigger string) jobs.TherapyStatsArgs {
		return jobs.TherapyStatsArgs{TherapyUserID: user, Year: 2026, Month: 11, BusinessDate: "2026-12-01", Trigger: trigger}
	}
	worked := b.workOnce(t,
		stats(1, "aggregate: connection refused"),
		stats(2, "aggregate: deadlock detected"),
		jobs.OrderSubmitArgs{OrderRequestID: 1},
		stats(3, ""))
	refused, deadlocked, order, completed := worked[0], worked[1], worked[2], worked[3]
	require.Equal(t, "discarded", b.state(t, refused))
	require.Equal(t, "completed", b.state(t, completed))
	// Cancelled on 10 January 2020 in Seoul, and at 20:00 UTC that day: 11
	// January in Seoul.
	jan10 := b.cancelledAt(t, kst(2020, 1, 10, 12, 0), stats(4, ""))
	jan11 := b.cancelledAt(t, time.Date(2020, 1, 10, 20, 0, 0, 0, time.UTC), stats(5, ""))
	queued := insert(t, b.riverAt(t, kst(2020, 1, 10, 12, 0)), stats(6, ""), &river.InsertOpts{Queue: "parked"})

	before := b.jobStates(t)
	code, stdout, stderr := b.enqueueAs("alice", "retry", "--kind", "therapy_stats", "--error-contains", "CONNECTION refused", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "dry run: would retry 1 job(s); nothing changed\nKIND           STATE      JOBS\ntherapy_stats  discarded  1\n", stdout)
	require.Equal(t, before, b.jobStates(t), "a dry run changes no job")
	require.Empty(t, b.actions(t), "and records nothing")

	// The order_submit job failed with the same text: another kind.
	code, stdout, stderr = b.enqueueAs("alice", "retry", "--kind", "therapy_stats", "--error-contains", "CONNECTION refused")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^retried 1 of 1 matching job\(s\) \(operator_action \d+\)\n$`, stdout)
	after := b.jobStates(t)
	require.Equal(t, []int64{refused}, changed(before, after))
	require.Equal(t, "available", b.state(t, refused))
	require.Equal(t, []action{{Action: "retry", Matched: 1, Acted: 1, By: "alice", Finished: true, Filter: map[string]any{
		"kind": []any{"therapy_stats"}, "state": []any{"discarded", "cancelled"}, "error_contains": "CONNECTION refused"}}}, b.actions(t))

	// A date is a day in BATCH_TZ: --until 2020-01-10 takes the job cancelled
	// at noon that day, not the one cancelled at 20:00 UTC, 05:00 in Seoul the
	// next day; nor the discarded jobs (another state).
	before = after
	code, stdout, stderr = b.enqueueAs("alice", "retry", "--state", "cancelled", "--until", "2020-01-10")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "retried 1 of 1 matching job(s)")
	after = b.jobStates(t)
	require.Equal(t, []int64{jan10}, changed(before, after))
	require.Equal(t, "available", b.state(t, jan10))
	last := b.actions(t)[1]
	require.Equal(t, map[string]any{"state": []any{"cancelled"}, "until": "2020-01-11T00:00:00+09:00", "time": "finalized_at"}, last.Filter)

	// Every kind failed in the last hour, the default states: the deadlocked
	// and the order job; not the job cancelled in 2020, not the completed one.
	before = after
	var hourAgo time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT now() - interval '1 hour'`).Scan(&hourAgo))
	code, stdout, stderr = b.enqueueAs("alice", "retry", "--since", hourAgo.Format(time.RFC3339Nano), "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "dry run: would retry 2 job(s); nothing changed\nKIND           STATE      JOBS\norder_submit   discarded  1\ntherapy_stats  discarded  1\n", stdout)
	code, stdout, stderr = b.enqueueAs("", "retry", "--since", hourAgo.Format(time.RFC3339Nano))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "retried 2 of 2 matching job(s)")
	after = b.jobStates(t)
	require.ElementsMatch(t, []int64{deadlocked, order}, changed(before, after))
	require.Equal(t, "cancelled", b.state(t, jan11))
	require.Equal(t, "completed", b.state(t, completed))
	require.Equal(t, "available", b.state(t, queued))
	last = b.actions(t)[2]
	require.Equal(t, int64(2), last.Acted)
	require.NotEmpty(t, last.By, "the OS user when $USER is unset")

	// A completed job runs again only when asked for by name.
	code, stdout, stderr = b.enqueueAs("alice", "retry", "--kind", "therapy_stats", "--state", "completed")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "retried 1 of 1 matching job(s)")
	require.Equal(t, "available", b.state(t, completed))
}

// A bulk cancel cancels exactly the waiting jobs its filter matches — kind,
// queue, the day they were enqueued — in batches, and records it; its dry
// run changes nothing.
func TestCancelByFilter(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	stats := func(user int64) jobs.TherapyStatsArgs {
		return jobs.TherapyStatsArgs{TherapyUserID: user, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}
	}
	jan10 := b.riverAt(t, kst(2020, 1, 10, 12, 0))
	parked := &river.InsertOpts{Queue: "parked"}
	match := insert(t, jan10, stats(1), parked)
	scheduled := insert(t, jan10, stats(2), &river.InsertOpts{Queue: "parked", ScheduledAt: kst(2030, 1, 1, 0, 0)})
	otherQueue := insert(t, jan10, stats(3), &river.InsertOpts{Queue: "parked2"})
	otherKind := insert(t, jan10, jobs.OrderReconcileArgs{}, parked)
	otherDay := insert(t, b.riverAt(t, kst(2020, 1, 11, 0, 0)), stats(4), parked)
	finished := b.cancelledAt(t, kst(2020, 1, 10, 13, 0), stats(5))
	require.Equal(t, "scheduled", b.state(t, scheduled))

	args := []string{"cancel", "--kind", "therapy_stats", "--queue", "parked", "--since", "2020-01-10", "--until", "2020-01-10"}
	before := b.jobStates(t)
	code, stdout, stderr := b.enqueueAs("bob", append(args, "--dry-run")...)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "dry run: would cancel 2 job(s); nothing changed\nKIND           STATE      JOBS\ntherapy_stats  available  1\ntherapy_stats  scheduled  1\n", stdout)
	require.Equal(t, before, b.jobStates(t))
	require.Empty(t, b.actions(t))

	code, stdout, stderr = b.enqueueAs("bob", args...)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^cancelled 2 of 2 matching job\(s\) \(operator_action \d+\)\n$`, stdout)
	require.ElementsMatch(t, []int64{match, scheduled}, changed(before, b.jobStates(t)))
	for _, id := range []int64{otherQueue, otherKind, otherDay} {
		require.Equal(t, "available", b.state(t, id))
	}
	require.Equal(t, before[finished], b.jobStates(t)[finished], "a finished job is not touched")
	require.Equal(t, []action{{Action: "cancel", Matched: 2, Acted: 2, By: "bob", Finished: true, Filter: map[string]any{
		"kind": []any{"therapy_stats"}, "queue": []any{"parked"}, "state": []any{"available", "scheduled", "retryable", "pending"},
		"since": "2020-01-10T00:00:00+09:00", "until": "2020-01-11T00:00:00+09:00", "time": "created_at"}}}, b.actions(t))

	// More jobs than a batch: every one is cancelled, batch after batch.
	many := make([]river.InsertManyParams, 1500)
	for i := range many {
		many[i] = river.InsertManyParams{Args: stats(int64(100 + i)), InsertOpts: &river.InsertOpts{Queue: "bulk"}}
	}
	_, err := jan10.InsertMany(context.Background(), many)
	require.NoError(t, err)
	code, stdout, stderr = b.enqueueAs("bob", "cancel", "--queue", "bulk")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "cancelled 1500 of 1500 matching job(s)")
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE queue = 'bulk' AND state <> 'cancelled'`))
	last := b.actions(t)[1]
	require.Equal(t, []int64{1500, 1500}, []int64{last.Matched, last.Acted})
	require.True(t, last.Finished)
}

// A running job is cancelled only when asked for by name: River asks its
// worker to stop, and it ends cancelled when the worker returns.
func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	ctx := context.Background()
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[jobs.OrderReconcileArgs]) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	c, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Logger: testkit.Logger(t), Workers: workers,
		Queues: map[string]river.QueueConfig{"work": {MaxWorkers: 1}}, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = c.Stop(stop)
	})
	id := insert(t, c, jobs.OrderReconcileArgs{}, &river.InsertOpts{Queue: "work"})
	b.waitState(t, id, "running")

	code, stdout, stderr := b.enqueueAs("carol", "cancel", "--kind", "order_reconcile")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "cancelled 0 of 0 matching job(s)", "running is not a default state")
	require.Equal(t, "running", b.state(t, id))

	code, stdout, stderr = b.enqueueAs("carol", "cancel", "--kind", "order_reconcile", "--state", "running")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "cancelled 0 of 1 matching job(s)")
	require.Contains(t, stdout, "1 running job(s) asked to stop")
	b.waitState(t, id, "cancelled")
	last := b.actions(t)[1]
	require.Equal(t, []int64{1, 1}, []int64{last.Matched, last.Acted})
}

// A filter that cannot be used is refused (exit 2, one line naming the
// flag) before any job is read or changed, and records nothing.
func TestBulkRefusesBadFilters(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	id := b.cancelledAt(t, kst(2020, 1, 10, 12, 0), jobs.TherapyStatsArgs{TherapyUserID: 1, Year: 2026, Month: 11})
	waiting := insert(t, b.riverAt(t, kst(2020, 1, 10, 12, 0)), jobs.OrderReconcileArgs{}, &river.InsertOpts{Queue: "parked"})
	before := b.jobStates(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cancel"}, "with no filter, cancel would cancel every job"},
		{[]string{"cancel", "--dry-run"}, "with no filter, cancel would cancel every job"},
		{[]string{"retry", "--kind", "therapy_stat"}, `--kind: unknown kind "therapy_stat"; the kinds are ` + strings.Join(jobs.Kinds(), ", ") + "\n"},
		{[]string{"cancel", "--kind", "order_reconcile,nope"}, `--kind: unknown kind "nope"`},
		{[]string{"retry", "--kind", "therapy_stats,,order_submit"}, `--kind: an empty name in "therapy_stats,,order_submit"`},
		{[]string{"retry", "--state", "available"}, "--state: retry acts on discarded, cancelled or completed jobs, not available ones"},
		{[]string{"retry", "--state", "discarded,running"}, "--state: retry acts on discarded, cancelled or completed jobs, not running ones"},
		{[]string{"cancel", "--state", "cancelled"}, "--state: cancel acts on available, scheduled, retryable, pending or running jobs, not cancelled ones"},
		{[]string{"cancel", "--state", "done"}, `--state: unknown state "done"`},
		{[]string{"retry", "--since", "2020-01-11", "--until", "2020-01-10"}, "--since 2020-01-11 is not before --until 2020-01-10"},
		{[]string{"cancel", "--kind", "order_reconcile", "--since", "2020-01-10T12:00:00+09:00", "--until", "2020-01-10T03:00:00Z"}, "--since 2020-01-10T12:00:00+09:00 is not before --until 2020-01-10T03:00:00Z"},
		{[]string{"retry", "--since", "yesterday"}, `--since: "yesterday": want an RFC 3339 timestamp`},
		{[]string{"retry", "--until", "2020-01-32"}, `--until: "2020-01-32": want an RFC 3339 timestamp`},
		{[]string{"retry", "--error-contains", ""}, "--error-contains: empty text would match every error"},
		{[]string{"cancel", "--queue", "parked", "--force"}, "flag provided but not defined: -force"},
		{[]string{"retry", "therapy_stats"}, `unexpected argument "therapy_stats"`},
	} {
		code, stdout, stderr := b.enqueueAs("dave", tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout, tc.args)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%v: one line: %q", tc.args, stderr)
		require.Contains(t, stderr, fmt.Sprintf("enqueue %s: %s", tc.args[0], tc.want), tc.args)
	}
	require.Equal(t, before, b.jobStates(t))
	require.Equal(t, "cancelled", b.state(t, id))
	require.Equal(t, "available", b.state(t, waiting))
	require.Empty(t, b.actions(t))
}
