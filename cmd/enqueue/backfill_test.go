package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// startBackfillWorker works the default queue (the runs) and the therapy
// queue (the daily run's therapy_stats jobs) until the test ends.
func (b *cliBundle) startBackfillWorker(t *testing.T) {
	t.Helper()
	b.startClient(t, map[string]int{"default": 4, "therapy": 4}, jobs.Deps{Store: b.st, TZ: b.tz, Logger: testkit.Logger(t)})
}

// runsPer counts kind's jobs in job_history (river_job and the archive) by
// the args key holding their date or month.
func (b *cliBundle) runsPer(t *testing.T, kind, key string) map[string]int64 {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
		SELECT args ->> $2, count(*) FROM job_history WHERE kind = $1 AND args ? $2 GROUP BY 1`, kind, key)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var d string
		var n int64
		require.NoError(t, rows.Scan(&d, &n))
		out[d] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// settlements is each settled date's "run:items".
func (b *cliBundle) settlements(t *testing.T) map[string]string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT run_date::text, run, item_count FROM point_daily_settlement`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var d string
		var run, items int
		require.NoError(t, rows.Scan(&d, &run, &items))
		out[d] = fmt.Sprintf("%d:%d", run, items)
	}
	require.NoError(t, rows.Err())
	return out
}

// ledgerDue inserts n EARN rows of member due on date.
func (b *cliBundle) ledgerDue(t *testing.T, date string, n int) {
	t.Helper()
	d, err := calendar.ParseDate(date)
	require.NoError(t, err)
	entries := make([]store.LedgerEntry, n)
	for i := range entries {
		entries[i] = store.LedgerEntry{MemberID: 1, Kind: "EARN", Amount: 10,
			OccurredAt: time.Date(d.Year(), d.Month(), d.Day()-1, 12, i, 0, 0, b.tz), ProcessOn: date}
	}
	_, err = b.st.InsertLedger(context.Background(), entries, b.tz)
	require.NoError(t, err)
}

// settle runs `enqueue settlement --date` and waits for the run to complete.
func (b *cliBundle) settle(t *testing.T, date string) {
	t.Helper()
	code, stdout, stderr := b.enqueue("settlement", "--date", date)
	require.Equal(t, 0, code, stderr)
	b.waitState(t, jobIDFrom(t, stdout), "completed")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestBackfillSettlementRunsMissingDatesOnce(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	b.startBackfillWorker(t)

	// 09-01 and 09-03 are settled beforehand; River's cleaner then moves
	// their jobs out of river_job. The rows of the other dates arrive
	// after, so that 09-03's run did not collect 09-02's.
	b.ledgerDue(t, "2026-09-01", 1)
	b.ledgerDue(t, "2026-09-03", 1)
	b.settle(t, "2026-09-01")
	b.settle(t, "2026-09-03")
	require.Equal(t, int64(2), testkit.RunCleaner(t, b.pool))
	b.ledgerDue(t, "2026-09-02", 2)
	b.ledgerDue(t, "2026-09-04", 3)
	b.ledgerDue(t, "2026-09-05", 1)

	code, stdout, stderr := b.enqueue("backfill", "settlement", "--from", "2026-09-01", "--to", "2026-09-05", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "backfill settlement 2026-09-01..2026-09-05: 5 date(s)\n"+
		"completed, skipped (2): 2026-09-01, 2026-09-03\n"+
		"to run (3): 2026-09-02, 2026-09-04..2026-09-05\n"+
		"dry run: nothing enqueued\n", stdout)
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job`), "a dry run enqueues nothing")

	code, stdout, stderr = b.enqueue("backfill", "settlement", "--from", "2026-09-01", "--to", "2026-09-05")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "to run (3): 2026-09-02, 2026-09-04..2026-09-05\n")
	require.Regexp(t, `(?m)^2026-09-04: completed \(job \d+, `, stdout)
	require.Equal(t, "backfill settlement 2026-09-01..2026-09-05: ran 3, skipped 2 completed, failed 0", lastLine(stdout))
	// Each date ran once and collected its own rows.
	require.Equal(t, map[string]int64{"2026-09-01": 1, "2026-09-02": 1, "2026-09-03": 1, "2026-09-04": 1, "2026-09-05": 1},
		b.runsPer(t, "point_settlement", "run_date"))
	require.Equal(t, map[string]string{"2026-09-01": "1:1", "2026-09-02": "1:2", "2026-09-03": "1:1", "2026-09-04": "1:3", "2026-09-05": "1:1"},
		b.settlements(t))
	// One at a time, oldest first: each run was inserted after the one
	// before it had finished.
	require.Zero(t, b.count(t, `
		SELECT count(*) FROM (
		    SELECT created_at, lag(finalized_at) OVER (ORDER BY args ->> 'run_date') AS before
		    FROM job_history WHERE kind = 'point_settlement' AND args ->> 'trigger' = 'backfill') r
		WHERE created_at < before`))
	require.Equal(t, int64(3), b.count(t, `SELECT count(*) FROM job_history WHERE kind = 'point_settlement' AND args ->> 'trigger' = 'backfill'`))

	// Again, also after the cleaner took the backfill's jobs: nothing to do.
	testkit.RunCleaner(t, b.pool)
	code, stdout, stderr = b.enqueue("backfill", "settlement", "--from", "2026-09-01", "--to", "2026-09-05")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "completed, skipped (5): 2026-09-01..2026-09-05\nto run (0): none\n")
	require.Equal(t, "backfill settlement 2026-09-01..2026-09-05: ran 0, skipped 5 completed, failed 0", lastLine(stdout))
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job`))

	// --rerun runs each date again, once: run 2 of each.
	code, stdout, stderr = b.enqueue("backfill", "settlement", "--from", "2026-09-01", "--to", "2026-09-02", "--rerun")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "completed, to run again (2): 2026-09-01..2026-09-02\nto run (2): 2026-09-01..2026-09-02\n")
	require.Regexp(t, `(?m)^2026-09-01: started job \d+ \(rerun\)$`, stdout)
	require.Equal(t, "backfill settlement 2026-09-01..2026-09-02: ran 2, skipped 0 completed, failed 0", lastLine(stdout))
	require.Equal(t, map[string]int64{"2026-09-01": 2, "2026-09-02": 2, "2026-09-03": 1, "2026-09-04": 1, "2026-09-05": 1},
		b.runsPer(t, "point_settlement", "run_date"))
	require.Equal(t, map[string]string{"2026-09-01": "2:1", "2026-09-02": "2:2", "2026-09-03": "1:1", "2026-09-04": "1:3", "2026-09-05": "1:1"},
		b.settlements(t))
}

// A settlement run that fails stops the backfill: the dates after it would
// collect its due rows.
func TestBackfillSettlementStopsAtAFailedDate(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	b.startBackfillWorker(t)
	b.ledgerDue(t, "2026-10-01", 1)
	b.ledgerDue(t, "2026-10-03", 1)
	// 101 uses by a member who never earned: past the skip limit of 100, so
	// the run of 10-02 is cancelled.
	uses := make([]store.LedgerEntry, 101)
	for i := range uses {
		uses[i] = store.LedgerEntry{MemberID: 99, Kind: "USE", Amount: 1, OccurredAt: time.Date(2026, 10, 1, 12, 0, i, 0, b.tz), ProcessOn: "2026-10-02"}
	}
	_, err := b.st.InsertLedger(context.Background(), uses, b.tz)
	require.NoError(t, err)

	code, stdout, stderr := b.enqueue("backfill", "settlement", "--from", "2026-10-01", "--to", "2026-10-03")
	require.Equal(t, 1, code, stdout)
	var failed int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT id FROM river_job WHERE kind = 'point_settlement' AND args ->> 'run_date' = '2026-10-02'`).Scan(&failed))
	require.Regexp(t, fmt.Sprintf(`(?m)^2026-10-02: cancelled \(job %d, [^)]*\): .*skip limit exceeded`, failed), stdout)
	require.Equal(t, fmt.Sprintf("backfill settlement 2026-10-01..2026-10-03: ran 1, skipped 0 completed, failed 1 (jobs %d), not started 1 (2026-10-03)", failed),
		lastLine(stdout))
	require.Regexp(t, fmt.Sprintf(`^enqueue backfill: 1 run\(s\) failed: 2026-10-02 \(job %d, cancelled: .*\); the later dates were not started \(.*\): fix the failure and run the backfill again\n$`,
		failed), stderr)
	require.Equal(t, map[string]int64{"2026-10-01": 1, "2026-10-02": 1}, b.runsPer(t, "point_settlement", "run_date"))
	require.Equal(t, map[string]string{"2026-10-01": "1:1"}, b.settlements(t))
}

func TestBackfillTherapyDailyRunsMissingDatesOnce(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	ctx := context.Background()
	b.startBackfillWorker(t)
	_, err := b.pool.Exec(ctx, `
		INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE');
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed) VALUES
		    (1, '2026-09-01 10:00+09', 60, true), (1, '2026-09-03 23:30+09', 60, true)`)
	require.NoError(t, err)

	// 09-01 ran and River's cleaner moved its job to the archive; 09-03 ran
	// and is still in river_job.
	daily := func(date string) {
		code, stdout, stderr := b.enqueue("therapy-daily", "--date", date)
		require.Equal(t, 0, code, stderr)
		var id int64
		_, err := fmt.Sscanf(stdout, "therapy_daily "+date+": job %d enqueued", &id)
		require.NoError(t, err, stdout)
		b.waitState(t, id, "completed")
	}
	daily("2026-09-01")
	require.Positive(t, testkit.RunCleaner(t, b.pool))
	daily("2026-09-03")

	code, stdout, stderr := b.enqueue("backfill", "therapy-daily", "--from", "2026-09-01", "--to", "2026-09-05", "--parallel", "3")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "completed, skipped (2): 2026-09-01, 2026-09-03\nto run (3): 2026-09-02, 2026-09-04..2026-09-05\n")
	require.Equal(t, "backfill therapy-daily 2026-09-01..2026-09-05: ran 3, skipped 2 completed, failed 0", lastLine(stdout))
	require.Equal(t, map[string]int64{"2026-09-01": 1, "2026-09-02": 1, "2026-09-03": 1, "2026-09-04": 1, "2026-09-05": 1},
		b.runsPer(t, "therapy_daily", "business_date"))
	// The runs' statistics: September as its sessions say.
	testkit.WaitFor(t, 30*time.Second, "therapy_stats jobs done", func() (bool, error) {
		var n int64
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'therapy_stats' AND finalized_at IS NULL`).Scan(&n)
		return n == 0, err
	})
	require.Equal(t, int64(2), b.count(t, `SELECT perform_count FROM therapy_statistics WHERE therapy_user_id = 1 AND year = 2026 AND month = 9`))

	// Again: all skipped, nothing enqueued.
	before := b.count(t, `SELECT count(*) FROM job_history`)
	code, stdout, stderr = b.enqueue("backfill", "therapy-daily", "--from", "2026-09-01", "--to", "2026-09-05")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "backfill therapy-daily 2026-09-01..2026-09-05: ran 0, skipped 5 completed, failed 0", lastLine(stdout))
	require.Equal(t, before, b.count(t, `SELECT count(*) FROM job_history`))

	// --dry-run --rerun lists every date to run again and changes nothing.
	code, stdout, stderr = b.enqueue("backfill", "therapy-daily", "--from", "2026-09-04", "--to", "2026-09-05", "--rerun", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "backfill therapy-daily 2026-09-04..2026-09-05: 2 date(s)\n"+
		"completed, to run again (2): 2026-09-04..2026-09-05\nto run (2): 2026-09-04..2026-09-05\ndry run: nothing enqueued\n", stdout)
	require.Equal(t, before, b.count(t, `SELECT count(*) FROM job_history`))

	// --rerun: each date once more, as rerun 1.
	code, stdout, stderr = b.enqueue("backfill", "therapy-daily", "--from", "2026-09-04", "--to", "2026-09-05", "--rerun")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "backfill therapy-daily 2026-09-04..2026-09-05: ran 2, skipped 0 completed, failed 0", lastLine(stdout))
	require.Equal(t, map[string]int64{"2026-09-01": 1, "2026-09-02": 1, "2026-09-03": 1, "2026-09-04": 2, "2026-09-05": 2},
		b.runsPer(t, "therapy_daily", "business_date"))
	require.Equal(t, int64(2), b.count(t, `SELECT count(*) FROM job_history WHERE kind = 'therapy_daily' AND (args ->> 'rerun')::int = 1`))
}

func TestBackfillTherapyVerifyRunsEachMonthOnce(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	ctx := context.Background()
	b.startBackfillWorker(t)
	_, err := b.pool.Exec(ctx, `
		INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE');
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		SELECT u, make_timestamptz(2026, m, 2, 10, 0, 0, 'Asia/Seoul'), 60, true
		FROM generate_series(1, 2) u, generate_series(9, 11) m`)
	require.NoError(t, err)
	var keys []store.TherapyKey
	for m := 9; m <= 11; m++ {
		keys = append(keys, store.NewTherapyKey(1, 2026, m, b.tz), store.NewTherapyKey(2, 2026, m, b.tz))
	}
	require.NoError(t, b.st.AggregateTherapy(ctx, keys, b.tz))
	_, err = b.pool.Exec(ctx, `UPDATE therapy_statistics SET perform_count = 7 WHERE therapy_user_id = 2 AND month = 10`)
	require.NoError(t, err)

	// September is verified beforehand; the cleaner moves its job out.
	code, stdout, stderr := b.enqueue("backfill", "therapy-verify", "--from", "2026-09-01", "--to", "2026-09-30")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "backfill therapy-verify 2026-09-01..2026-09-30: ran 1, skipped 0 completed, failed 0", lastLine(stdout))
	require.Positive(t, testkit.RunCleaner(t, b.pool))

	code, stdout, stderr = b.enqueue("backfill", "therapy-verify", "--from", "2026-09-15", "--to", "2026-11-30")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "backfill therapy-verify 2026-09-15..2026-11-30: 3 month(s)\ncompleted, skipped (1): 2026-09\nto run (2): 2026-10..2026-11\n")
	require.Equal(t, "backfill therapy-verify 2026-09-15..2026-11-30: ran 2, skipped 1 completed, failed 0", lastLine(stdout))
	require.Equal(t, map[string]int64{"2026-09": 1, "2026-10": 1, "2026-11": 1}, b.runsPer(t, "therapy_stats_verify", "month"))
	// Each month's check sampled its own rows: October's drifted row, and
	// its aggregation enqueued again.
	var reports string
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT string_agg(format('%s:%s/%s', args ->> 'month', metadata -> 'output' ->> 'checked', metadata -> 'output' ->> 'drifted'), ' '
		       ORDER BY args ->> 'month')
		FROM job_history WHERE kind = 'therapy_stats_verify'`).Scan(&reports))
	require.Equal(t, "2026-09:2/0 2026-10:2/1 2026-11:2/0", reports)
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM job_history WHERE kind = 'therapy_stats' AND args ->> 'trigger' = 'verify'
		AND (args ->> 'therapy_user_id')::int = 2 AND (args ->> 'month')::int = 10`))

	before := b.count(t, `SELECT count(*) FROM job_history`)
	code, stdout, stderr = b.enqueue("backfill", "therapy-verify", "--from", "2026-09-01", "--to", "2026-11-30")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "backfill therapy-verify 2026-09-01..2026-11-30: ran 0, skipped 3 completed, failed 0", lastLine(stdout))
	require.Equal(t, before, b.count(t, `SELECT count(*) FROM job_history`))
}

// Two backfills of one range at once: each date runs once, the second
// waiting for the first's runs rather than starting its own.
func TestBackfillConcurrentBackfillsRunEachDateOnce(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	b.startBackfillWorker(t)
	results := b.enqueueTwiceAtOnce("backfill", "therapy-daily", "--from", "2026-11-01", "--to", "2026-11-06")
	started := 0
	for _, r := range results {
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `: ran \d+( \(\d+ started elsewhere\))?, skipped \d+ completed, failed 0$`, lastLine(r.stdout))
		started += len(regexp.MustCompile(`(?m)^2026-11-0\d: started job \d+$`).FindAllString(r.stdout, -1))
	}
	require.Equal(t, 6, started, "%s\n%s", results[0].stdout, results[1].stdout)
	require.Equal(t, map[string]int64{"2026-11-01": 1, "2026-11-02": 1, "2026-11-03": 1, "2026-11-04": 1, "2026-11-05": 1, "2026-11-06": 1},
		b.runsPer(t, "therapy_daily", "business_date"))
}

func TestBackfillRefusesBadRanges(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	now := time.Now()
	tomorrow := calendar.NextBusinessDate(now, b.tz)
	settleNext, err := calendar.DayAfter(calendar.SettlementBusinessDate(now, b.tz))
	require.NoError(t, err)
	today := now.In(b.tz)
	monthStart := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, b.tz).Format(time.DateOnly)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backfill"}, "missing batch: enqueue backfill <settlement|therapy-daily|therapy-verify> --from YYYY-MM-DD --to YYYY-MM-DD"},
		{[]string{"backfill", "--from", "2026-09-01", "--to", "2026-09-02"}, "missing batch"},
		{[]string{"backfill", "nightly", "--from", "2026-09-01", "--to", "2026-09-02"},
			`unknown batch "nightly"; want one of settlement, therapy-daily, therapy-verify`},
		{[]string{"backfill", "settlement", "--to", "2026-09-02"}, "--from is required (YYYY-MM-DD)"},
		{[]string{"backfill", "settlement", "--from", "2026-09-01"}, "--to is required (YYYY-MM-DD)"},
		{[]string{"backfill", "settlement", "--from", "2026-9-01", "--to", "2026-09-02"}, `--from: date "2026-9-01": want YYYY-MM-DD`},
		{[]string{"backfill", "therapy-daily", "--from", "2026-09-01", "--to", "2026-09-31"}, `--to: date "2026-09-31": want YYYY-MM-DD`},
		{[]string{"backfill", "therapy-daily", "--from", "2026-09-05", "--to", "2026-09-01"}, "--from 2026-09-05 is after --to 2026-09-01; nothing enqueued"},
		{[]string{"backfill", "therapy-daily", "--from", "2026-09-01", "--to", tomorrow},
			fmt.Sprintf("--to %s is after today's business date %s in Asia/Seoul; nothing enqueued", tomorrow, calendar.BusinessDate(now, b.tz))},
		{[]string{"backfill", "settlement", "--from", "2026-09-01", "--to", settleNext},
			fmt.Sprintf("--to %s is after the settlement's business date %s (a date is settled from 00:30 Asia/Seoul)", settleNext, calendar.SettlementBusinessDate(now, b.tz))},
		{[]string{"backfill", "therapy-verify", "--from", "2026-09-01", "--to", monthStart}, "the end of the last month that is over"},
		{[]string{"backfill", "therapy-daily", "--from", "2025-09-01", "--to", "2026-09-02"},
			"--from 2025-09-01 to --to 2026-09-02 is 367 days; at most 366 at once; nothing enqueued"},
		{[]string{"backfill", "therapy-daily", "--from", "2026-09-01", "--to", "2026-09-02", "--parallel", "0"}, "--parallel: want 1..8, got 0"},
		{[]string{"backfill", "therapy-daily", "--from", "2026-09-01", "--to", "2026-09-02", "--parallel", "9"}, "--parallel: want 1..8, got 9"},
		{[]string{"backfill", "settlement", "--from", "2026-09-01", "--to", "2026-09-02", "--parallel", "2"},
			"--parallel 2: settlement runs one date at a time, oldest first"},
		{[]string{"backfill", "settlement", "--from", "2026-09-01", "--to", "2026-09-02", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := b.enqueue(tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout, "%v", tc.args)
		require.True(t, strings.HasPrefix(stderr, "enqueue backfill: "), stderr)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
		require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job`))

	code, stdout, _ := b.enqueue("backfill", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "usage of enqueue backfill <settlement|therapy-daily|therapy-verify>:")
}
