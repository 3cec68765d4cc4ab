package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

type testBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	env  []string
	bin  string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, url := testkit.Pool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE'), (3, 'INACTIVE')`)
	require.NoError(t, err)
	return &testBundle{ctx: ctx, pool: pool, env: []string{"DATABASE_URL=" + url, "BATCH_TZ=Asia/Seoul"}, bin: testbin.Build(t, "enqueue")}
}

func (b *testBundle) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return testbin.Run(t, b.bin, b.env, args...)
}

// ok runs the command, requires it to exit 0 and returns its stdout.
func (b *testBundle) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := b.run(t, args...)
	require.Equal(t, 0, code, "%v: %s", args, stderr)
	return stdout
}

func (b *testBundle) jobs(t *testing.T) int {
	t.Helper()
	return int(testkit.Count(t, b.pool, `SELECT count(*) FROM river_job`))
}

func TestBadInputExitsTwoWithOneLineAndEnqueuesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"therapy-stats", "--month", "2026-13", "--user", "1"}, "month out of range"},
		{[]string{"therapy-stats", "--month", "26-11", "--user", "1"}, "want YYYY-MM"},
		{[]string{"therapy-stats", "--user", "1"}, "--month is required"},
		{[]string{"therapy-stats", "--month", "2026-11"}, "exactly one of"},
		{[]string{"therapy-stats", "--month", "2026-11", "--user", "1", "--all-active"}, "exactly one of"},
		{[]string{"therapy-stats", "--month", "2026-11", "--user", "1,abc"}, `"abc" is not a positive integer`},
		{[]string{"therapy-stats", "--month", "2026-11", "--user", "1,99,98"}, "unknown therapy user(s) 98,99"},
		{[]string{"therapy-stats", "--month", "2026-11", "--users", "1"}, "flag provided but not defined"},
		{[]string{"therapy-stats", "--month", "2026-11", "--user", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"therapy-daily", "--date", "2026-12-32"}, "want YYYY-MM-DD"},
		{[]string{"therapy-daily", "--date", "20261201"}, "want YYYY-MM-DD"},
		{[]string{"retry", "--kind", "therapy"}, `--kind: unknown kind "therapy"`},
		{[]string{"retry", "--kind", "therapy_stats", "--state", "available"}, "retry acts on discarded, cancelled or completed jobs"},
		{[]string{"cancel"}, "with no filter, cancel would cancel every job"},
		{[]string{"wait", "--timeout", "-1s"}, "positive duration"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tc := range cases {
		code, stdout, stderr := b.run(t, tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout, "%v", tc.args)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%v: one line: %q", tc.args, stderr)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
	}
	require.Zero(t, b.jobs(t))

	code, _, stderr := testbin.Run(t, b.bin, append(b.env, "BATCH_TZ=Mars/Olympus"), "status")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "BATCH_TZ")
}

func TestTherapyStatsBackfillCountsDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Contains(t, b.ok(t, "therapy-stats", "--month", "2026-11", "--user", "1,2,2"), "2 user(s): inserted 2, skipped 0 as duplicates")
	require.Contains(t, b.ok(t, "therapy-stats", "--month", "2026-11", "--all-active"), "2 user(s): inserted 0, skipped 2 as duplicates",
		"INACTIVE user 3 is not included")
	require.Equal(t, 2, b.jobs(t))

	require.Contains(t, b.ok(t, "therapy-daily", "--date", "2026-12-01"), "it aggregates 2026-11")
	code, _, stderr := b.run(t, "therapy-daily", "--date", "2026-12-01")
	require.Equal(t, 3, code, "already ran: the exit status settlement and coupon-exchange give too")
	require.Contains(t, stderr, "therapy_daily 2026-12-01: already queued as job ")
	require.Equal(t, 3, b.jobs(t))

	require.Contains(t, b.ok(t, "status"), "therapy_stats  available  2")

	// Nothing works these jobs here: wait gives up, exit 1, saying how many.
	code, _, stderr = b.run(t, "wait", "--timeout", "300ms")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "3 job(s) still outstanding")
}

func TestRetryRequeuesCancelledJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ok(t, "therapy-stats", "--month", "2026-11", "--user", "1,2")
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, jobs.Deps{Store: store.New(b.pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)})
	require.NoError(t, err)
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT id FROM river_job WHERE args->>'therapy_user_id' = '1'`).Scan(&id))
	_, err = client.JobCancel(b.ctx, id)
	require.NoError(t, err)

	require.Equal(t, "retried 1 of 1 matching job(s) (operator_action 1)\n", b.ok(t, "retry", "--kind", "therapy_stats"))
	var cancelled int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`).Scan(&cancelled))
	require.Zero(t, cancelled)

	code, _, stderr := b.run(t, "wait", "--timeout", "100ms")
	require.Equal(t, 1, code, "two available jobs remain: %s", stderr)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Help on stdout, exit 0; a usage error on stderr, exit 2.
	code, stdout, stderr := b.run(t, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "therapy-stats")
	require.Empty(t, stderr)
	code, stdout, _ = b.run(t, "therapy-stats", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "--all-active")
	code, stdout, _ = b.run(t, "coupon", "create", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "can be issued (required)\n", "a required flag's sentinel default is not shown")
	require.NotContains(t, stdout, "(default -1)")
	code, stdout, _ = b.run(t, "settlement", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, fmt.Sprintf("(default %d)", jobs.DefaultCommitInterval), "a default that means something is shown")
	code, stdout, stderr = b.run(t)
	require.Equal(t, 2, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "usage: enqueue")
	code, stdout, _ = b.run(t, "--version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^enqueue \S+ \(commit \S+, committed \S+, go\S+\)\n$`, stdout)
}

// Under LOG_FORMAT=json an error is one JSON object on stderr, naming the
// command and the exit status, as the worker's lines are JSON.
func TestErrorsAsJSONLines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env := append(append([]string{}, b.env...), "LOG_FORMAT=json")
	for _, tc := range []struct {
		args    []string
		code    int
		command string
		msg     string
	}{
		{[]string{"settlement"}, 2, "settlement", "--date is required (YYYY-MM-DD)"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"; run enqueue --help for the list`},
		{[]string{"wait", "--timeout", "-1s"}, 2, "wait", "--timeout: want a positive duration, got -1s"},
	} {
		code, stdout, stderr := testbin.Run(t, b.bin, env, tc.args...)
		require.Equal(t, tc.code, code, stderr)
		require.Empty(t, stdout)
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(stderr), &rec), "one JSON object: %q", stderr)
		require.Equal(t, "ERROR", rec["level"])
		require.Equal(t, tc.msg, rec["msg"])
		require.Equal(t, float64(tc.code), rec["exit"])
		if tc.command != "" {
			require.Equal(t, tc.command, rec["command"])
		}
	}
	code, _, stderr := testbin.Run(t, b.bin, append(env, "LOG_FORMAT=xml"), "status")
	require.Equal(t, 2, code)
	require.Equal(t, "enqueue: configuration: LOG_FORMAT: want text or json, got \"xml\"\n", stderr, "a bad LOG_FORMAT is reported as text")
}
