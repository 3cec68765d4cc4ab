package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

type cliBundle struct {
	pool  *pgxpool.Pool
	dbURL string
	st    *store.Store
	tz    *time.Location
}

func setupCLI(t *testing.T) *cliBundle {
	t.Helper()
	pool, dbURL := testkit.Pool(t)
	return &cliBundle{pool: pool, dbURL: dbURL, st: store.New(pool), tz: testkit.TZ()}
}

// enqueue runs the CLI in-process, as the binary's main does.
func (b *cliBundle) enqueue(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return b.dbURL
		}
		return ""
	}
	code = Main(context.Background(), args, getenv, &o, &e)
	return code, o.String(), e.String()
}

// cliResult is one run of the command.
type cliResult struct {
	code           int
	stdout, stderr string
}

// enqueueTwiceAtOnce runs the same command twice at the same time.
func (b *cliBundle) enqueueTwiceAtOnce(args ...string) [2]cliResult {
	var results [2]cliResult
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			code, o, e := b.enqueue(args...)
			results[i] = cliResult{code, o, e}
		})
	}
	wg.Wait()
	return results
}

func (b *cliBundle) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	return testkit.Count(t, b.pool, sql, args...)
}

// ledgerState is every ledger row's mutable columns, to show a refusal changed nothing.
func (b *cliBundle) ledgerState(t *testing.T) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT coalesce(string_agg(format('%s:%s:%s:%s', id, process_on, processed_on, ready), ' ' ORDER BY id), '')
		FROM point_ledger`).Scan(&s))
	return s
}

// startWorker works jobs on the test database until the test ends.
func (b *cliBundle) startWorker(t *testing.T) *jobs.Client {
	t.Helper()
	logger := testkit.Logger(t)
	return b.startClient(t, map[string]int{"default": 2}, jobs.Deps{Store: b.st, TZ: b.tz, Logger: logger})
}

// startClient starts a worker client with queues on the test database,
// stopped when the test ends.
func (b *cliBundle) startClient(t *testing.T, queues map[string]int, deps jobs.Deps) *jobs.Client {
	t.Helper()
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{Queues: queues, Retention: 24 * time.Hour,
		RescueAfter: 90 * time.Second, FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}, deps)
	require.NoError(t, err)
	testkit.StartClient(t, client)
	return client
}

func (b *cliBundle) waitState(t *testing.T, id int64, want string) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("job %d %s", id, want), func() (bool, error) {
		var state string
		err := b.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&state)
		if err == nil && state != want {
			err = fmt.Errorf("job %d is %s", id, state)
		}
		return state == want, err
	})
}

func jobIDFrom(t *testing.T, stdout string) int64 {
	t.Helper()
	var date string
	var run int
	var id int64
	_, err := fmt.Sscanf(stdout, "point_settlement %s run %d enqueued as job %d", &date, &run, &id)
	require.NoError(t, err, stdout)
	return id
}

func TestSettlementCommandIdentity(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	_, err := b.st.InsertLedger(context.Background(), []store.LedgerEntry{
		{MemberID: 1, Kind: "EARN", Amount: 10, OccurredAt: time.Date(2026, 11, 19, 12, 0, 0, 0, b.tz)}}, b.tz)
	require.NoError(t, err)

	// Two CLIs at once: one run starts, the other is refused.
	results := b.enqueueTwiceAtOnce("settlement", "--date", "2026-11-20")
	if results[0].code != 0 {
		results[0], results[1] = results[1], results[0]
	}
	require.Equal(t, 0, results[0].code, results[0].stderr)
	id := jobIDFrom(t, results[0].stdout)
	require.Equal(t, "point_settlement 2026-11-20: run 1 enqueued as job "+fmt.Sprint(id)+"\n", results[0].stdout)
	require.Equal(t, 3, results[1].code, "already ran")
	require.Equal(t, fmt.Sprintf("enqueue settlement: point_settlement 2026-11-20: already queued as job %d (available); wait for it to finish\n", id), results[1].stderr)
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'point_settlement'`))

	b.startWorker(t)
	b.waitState(t, id, "completed")
	code, _, stderr := b.enqueue("settlement", "--date", "2026-11-20")
	require.Equal(t, 3, code, "already ran")
	requireCompleted(t, stderr, id, b.tz)

	code, stdout, stderr := b.enqueue("settlement", "--date", "2026-11-20", "--rerun")
	require.Equal(t, 0, code, stderr)
	rerun := jobIDFrom(t, stdout)
	require.Contains(t, stdout, "run 2 enqueued")
	b.waitState(t, rerun, "completed")
	st, err := b.st.GetSettlement(context.Background(), "2026-11-20")
	require.NoError(t, err)
	require.Equal(t, []int64{rerun, 2, 10, 1}, []int64{st.JobID, int64(st.Run), st.Earned, int64(st.ItemCount)})

	// River's cleaner takes both runs out of river_job: the date is still
	// refused with the same message, and a rerun is numbered after both.
	require.Equal(t, int64(2), testkit.RunCleaner(t, b.pool))
	code, _, stderr = b.enqueue("settlement", "--date", "2026-11-20")
	require.Equal(t, 3, code, "already ran")
	requireCompleted(t, stderr, rerun, b.tz)
	require.Equal(t, int64(0), b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'point_settlement'`))
	code, stdout, stderr = b.enqueue("settlement", "--date", "2026-11-20", "--rerun")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "run 3 enqueued")
	b.waitState(t, jobIDFrom(t, stdout), "completed")
	require.Equal(t, int64(3), b.count(t, `SELECT count(*) FROM batch_job_execution WHERE job_name = 'point_settlement' AND status = 'COMPLETED'`))
}

func TestSettlementCommandBadInput(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	for _, args := range [][]string{
		{"settlement"},
		{"settlement", "--date", "2026-13-01"},
		{"settlement", "--date", "2026-02-30"},
		{"settlement", "--date", "20261120"},
		{"settlement", "--date", "2026-11-20", "--commit-interval", "0"},
		{"settlement", "--date", "2026-11-20", "--skip-limit", "-1"},
		{"settlement", "--date", "2026-11-20", "extra"},
	} {
		code, _, stderr := b.enqueue(args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.True(t, strings.HasPrefix(stderr, "enqueue settlement: "), stderr)
		require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	}
	require.Equal(t, int64(0), b.count(t, `SELECT count(*) FROM river_job`))
}

func TestReprocessDeferReadyCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	ctx := context.Background()
	occurred := time.Date(2026, 3, 9, 12, 0, 0, 0, b.tz)
	ids, err := b.st.InsertLedger(ctx, []store.LedgerEntry{
		{MemberID: 1, Kind: "EARN", Amount: 1, OccurredAt: occurred},                  // p1: processed below
		{MemberID: 1, Kind: "EARN", Amount: 2, OccurredAt: occurred},                  // p2: processed below
		{MemberID: 1, Kind: "EARN", Amount: 3, OccurredAt: occurred},                  // p3: processed below
		{MemberID: 1, Kind: "EARN", Amount: 4, OccurredAt: occurred.AddDate(0, 9, 0)}, // u: unprocessed
		{MemberID: 1, Kind: "EARN", Amount: 5, OccurredAt: occurred.AddDate(0, 9, 0), NotReady: true},
	}, b.tz)
	require.NoError(t, err)
	p1, p2, p3, u, nr := ids[0], ids[1], ids[2], ids[3], ids[4]
	_, err = b.pool.Exec(ctx, `UPDATE point_ledger SET processed_on = process_on WHERE id = ANY($1)`, []int64{p1, p2, p3})
	require.NoError(t, err)
	today := time.Now().In(b.tz)
	future := today.AddDate(0, 0, 30).Format(time.DateOnly)

	refused := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"reprocess", "--ledger-id", fmt.Sprintf("%d,%d", p1, u), "--on", "2026-09-05"}, 1,
			fmt.Sprintf("enqueue reprocess: ledger row(s) %d are not processed yet (only processed rows can be reprocessed); nothing changed\n", u)},
		{[]string{"reprocess", "--ledger-id", fmt.Sprintf("%d,999999,999998", p1), "--on", "2026-09-05"}, 2,
			"enqueue reprocess: --ledger-id: ledger row(s) 999999,999998 do not exist; nothing changed\n"},
		{[]string{"reprocess", "--ledger-id", fmt.Sprint(p1), "--on", "2026-03-10"}, 1,
			fmt.Sprintf("enqueue reprocess: ledger row(s) %d were processed on or after 2026-03-10; reprocess them on a later date; nothing changed\n", p1)},
		{[]string{"reprocess", "--ledger-id", fmt.Sprint(p1), "--on", "2026-9-5"}, 2,
			"enqueue reprocess: --on: date \"2026-9-5\": want YYYY-MM-DD, like 2026-11-20\n"},
		{[]string{"reprocess", "--ledger-id", "1,x"}, 2, "enqueue reprocess: --ledger-id: \"x\" is not a positive integer id\n"},
		{[]string{"reprocess"}, 2, "enqueue reprocess: --ledger-id is required (1,2,3)\n"},
		{[]string{"defer", "--ledger-id", fmt.Sprint(u), "--to", today.AddDate(0, 0, -1).Format(time.DateOnly)}, 2,
			fmt.Sprintf("enqueue defer: --to %s is not in the future (today is %s in Asia/Seoul); nothing changed\n", today.AddDate(0, 0, -1).Format(time.DateOnly), today.Format(time.DateOnly))},
		{[]string{"defer", "--ledger-id", fmt.Sprint(u), "--to", today.Format(time.DateOnly)}, 2,
			fmt.Sprintf("enqueue defer: --to %s is not in the future (today is %s in Asia/Seoul); nothing changed\n", today.Format(time.DateOnly), today.Format(time.DateOnly))},
		{[]string{"defer", "--ledger-id", fmt.Sprint(u), "--to", "2026-12-32"}, 2,
			"enqueue defer: --to: date \"2026-12-32\": want YYYY-MM-DD, like 2026-11-20\n"},
		{[]string{"defer", "--ledger-id", fmt.Sprint(u)}, 2, "enqueue defer: --to is required (YYYY-MM-DD)\n"},
		{[]string{"defer", "--ledger-id", fmt.Sprintf("%d,%d", u, p3), "--to", future}, 1,
			fmt.Sprintf("enqueue defer: ledger row(s) %d are already processed (only unprocessed rows can be deferred; use reprocess); nothing changed\n", p3)},
		{[]string{"defer", "--ledger-id", fmt.Sprintf("%d,999999", u), "--to", future}, 2,
			"enqueue defer: --ledger-id: ledger row(s) 999999 do not exist; nothing changed\n"},
		{[]string{"ready", "--ledger-id", fmt.Sprintf("%d,999999", nr)}, 2,
			"enqueue ready: --ledger-id: ledger row(s) 999999 do not exist; nothing changed\n"},
		{[]string{"ready", "--ledger-id", "0"}, 2, "enqueue ready: --ledger-id: \"0\" is not a positive integer id\n"},
	}
	before := b.ledgerState(t)
	for _, r := range refused {
		code, stdout, stderr := b.enqueue(r.args...)
		require.Equal(t, r.code, code, "%v: %s", r.args, stderr)
		require.Equal(t, r.stderr, stderr, "%v", r.args)
		require.Empty(t, stdout)
		require.Equal(t, before, b.ledgerState(t), "%v changed the ledger", r.args)
	}

	rows := func(ids ...int64) []store.LedgerRow {
		out, err := b.st.GetLedgerRows(ctx, ids)
		require.NoError(t, err)
		return out
	}
	code, stdout, stderr := b.enqueue("reprocess", "--ledger-id", fmt.Sprintf("%d,%d", p1, p2), "--on", "2026-09-05")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "reprocess: 2 ledger row(s) set to be processed on 2026-09-05\n", stdout)
	for _, r := range rows(p1, p2) {
		require.Equal(t, "2026-09-05", r.ProcessOn)
	}
	code, _, stderr = b.enqueue("reprocess", "--ledger-id", fmt.Sprint(p3))
	require.Equal(t, 0, code, stderr)
	require.Equal(t, today.AddDate(0, 0, 1).Format(time.DateOnly), rows(p3)[0].ProcessOn, "default: the next business date")

	code, _, stderr = b.enqueue("defer", "--ledger-id", fmt.Sprint(u), "--to", future)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, future, rows(u)[0].ProcessOn)

	code, stdout, stderr = b.enqueue("ready", "--ledger-id", fmt.Sprintf("%d,%d", nr, u))
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "ready: 1 ledger row(s) marked ready (1 already were); the next run collects those due\n", stdout)
	require.True(t, rows(nr)[0].Ready)
}

func TestDemoLedgerRowsAreSettledOnTheirDate(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo-ledger", "--rows", "0"}, "--rows: want 1..100000, got 0"},
		{[]string{"demo-ledger", "--rows", "100001"}, "--rows: want 1..100000"},
		{[]string{"demo-ledger", "--members", "0"}, "--members: want 1..10000000, got 0"},
		{[]string{"demo-ledger", "--date", "2026-11-31"}, "want YYYY-MM-DD"},
		{[]string{"demo-ledger", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := b.enqueue(tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout, "%v", tc.args)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM point_ledger`))

	code, stdout, stderr := b.enqueue("demo-ledger", "--rows", "250", "--members", "40", "--date", "2026-11-20")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^demo ledger: inserted 250 point_ledger row\(s\) \(ids \d+\.\.\d+\) due on 2026-11-20\n$`, stdout)
	require.Equal(t, int64(250), b.count(t, `SELECT count(*) FROM point_ledger WHERE process_on = '2026-11-20' AND ready`))
	require.Equal(t, int64(40), b.count(t, `SELECT count(DISTINCT member_id) FROM point_ledger`))
	require.Equal(t, int64(3), b.count(t, `SELECT count(DISTINCT kind) FROM point_ledger`))
	// Every row occurred on the day before its date, in BATCH_TZ.
	require.Equal(t, int64(250), b.count(t,
		`SELECT count(*) FROM point_ledger WHERE (occurred_at AT TIME ZONE $1)::date = '2026-11-19'`, b.tz.String()))

	// The settlement of that date collects every one of them.
	code, stdout, stderr = b.enqueue("settlement", "--date", "2026-11-20")
	require.Equal(t, 0, code, stderr)
	b.startWorker(t)
	b.waitState(t, jobIDFrom(t, stdout), "completed")
	require.Equal(t, int64(250), b.count(t, `SELECT count(*) FROM point_ledger WHERE processed_on = '2026-11-20'`))
	require.Equal(t, int64(250), b.count(t, `SELECT item_count FROM point_daily_settlement WHERE run_date = '2026-11-20'`))
}

// requireCompleted requires stderr to be the settlement CLI's refusal of
// 2026-11-20 as completed by job id, its time shown in BATCH_TZ (tz).
func requireCompleted(t *testing.T, stderr string, id int64, tz *time.Location) {
	t.Helper()
	offset := regexp.QuoteMeta(time.Now().In(tz).Format("-07:00"))
	require.Regexp(t, fmt.Sprintf(`^enqueue settlement: point_settlement 2026-11-20: already completed as job %d at `+
		`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d%s; use --rerun to run it again\n$`, id, offset), stderr)
}
