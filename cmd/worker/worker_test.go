package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

func TestMigrateEmptyDatabaseThenNoOp(t *testing.T) {
	t.Parallel()
	url := testkit.EmptyDatabaseURL(t)
	bin := testbin.Build(t, "worker")
	code, _, stderr := testbin.Run(t, bin, []string{"DATABASE_URL=" + url}, "migrate")
	require.Equal(t, 0, code, stderr)
	m := regexp.MustCompile(`msg="migrated 0 → (\d+)"`).FindStringSubmatch(stderr)
	require.NotNil(t, m, "says what it did: %s", stderr)
	code, _, stderr = testbin.Run(t, bin, []string{"DATABASE_URL=" + url}, "migrate")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, `msg="nothing to migrate: the schema is at version `+m[1]+`"`)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer c.Close(ctx)
	var riverVersion, tables int
	require.NoError(t, c.QueryRow(ctx, `SELECT max(version) FROM river_migration`).Scan(&riverVersion))
	require.Equal(t, 8, riverVersion, "River's own migrations are applied and recorded")
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_name IN ('river_job', 'river_leader', 'therapy_statistics', 'therapy_batch_log')`).Scan(&tables))
	require.Equal(t, 4, tables)

	code, _, stderr = testbin.Run(t, bin, []string{"DATABASE_URL=mysql://nope"}, "migrate")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "DATABASE_URL")
	code, _, _ = testbin.Run(t, bin, nil, "frobnicate")
	require.Equal(t, 2, code)
}

// Help and the version on stdout with exit 0; a usage error on stderr,
// exit 2. The version is the one /metrics reports.
func TestWorkerHelpAndVersion(t *testing.T) {
	t.Parallel()
	bin := testbin.Build(t, "worker")
	code, stdout, stderr := testbin.Run(t, bin, nil, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "worker migrate")
	require.Empty(t, stderr)
	code, stdout, _ = testbin.Run(t, bin, nil, "--version")
	require.Equal(t, 0, code)
	m := regexp.MustCompile(`^worker (\S+) \(commit (\S+?)(, modified)?, committed \S+, (go\S+)\)\n$`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	code, stdout, stderr = testbin.Run(t, bin, nil, "--verison")
	require.Equal(t, 2, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "unknown arguments")

	w := testbin.StartWorker(t, "DATABASE_URL="+testkit.DatabaseURL(t), "PERIODIC_JOBS=false")
	resp, err := http.Get("http://" + w.Addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), fmt.Sprintf(`tidemark_build_info{goversion=%q,revision=%q,version=%q} 1`, m[4], m[2], m[1]))
}

func TestWorkerStopsGracefullyOnSIGTERM(t *testing.T) {
	t.Parallel()
	url := testkit.DatabaseURL(t)
	w := testbin.StartWorker(t, "DATABASE_URL="+url, "PERIODIC_JOBS=false")
	resp, err := http.Get("http://" + w.Addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, w.Stop(30*time.Second), "exit status 0 after SIGTERM")
	require.Contains(t, w.Output(), "worker stopped")
}

// Two worker processes on one database give the same statistics as one, with
// every job completed on its first attempt (no unique violation, no lock
// error) and both processes doing part of the work.
func TestTwoWorkersAggregateConcurrently(t *testing.T) {
	t.Parallel()
	pool, url := testkit.Pool(t)
	ctx := context.Background()
	enqueue := testbin.Build(t, "enqueue")
	env := []string{"DATABASE_URL=" + url, "BATCH_TZ=Asia/Seoul", "PERIODIC_JOBS=false"}

	code, _, stderr := testbin.Run(t, enqueue, env, "demo-data", "--users", "3000", "--performs", "10", "--month", "2026-11")
	require.Equal(t, 0, code, stderr)

	w1 := testbin.StartWorker(t, env...)
	w2 := testbin.StartWorker(t, env...)
	// The daily run and an overlapping backfill of the same month race each
	// other for the same user-months on both workers.
	code, _, stderr = testbin.Run(t, enqueue, env, "therapy-daily", "--date", "2026-12-01")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = testbin.Run(t, enqueue, env, "therapy-stats", "--month", "2026-11", "--all-active")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = testbin.Run(t, enqueue, env, "wait", "--timeout", "3m")
	require.Equal(t, 0, code, stderr)

	var jobs, firstTry, workers int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE attempt = 1 AND errors IS NULL AND state = 'completed'),
		       count(DISTINCT attempted_by[1])
		FROM river_job WHERE kind = 'therapy_stats'`).Scan(&jobs, &firstTry, &workers))
	require.GreaterOrEqual(t, jobs, 3000)
	require.Equal(t, jobs, firstTry, "every aggregation succeeded on its first attempt")
	require.Equal(t, 2, workers, "both worker processes worked therapy_stats jobs")

	// Compare every user-month with a direct computation over therapy_perform.
	var users, mismatched int
	require.NoError(t, pool.QueryRow(ctx, `
		WITH truth AS (
			SELECT therapy_user_id, count(*) AS n, count(*) FILTER (WHERE completed) AS c,
			       sum(duration_seconds) AS d, count(DISTINCT (performed_at AT TIME ZONE 'Asia/Seoul')::date) AS days
			FROM therapy_perform
			WHERE performed_at >= '2026-11-01 00:00+09' AND performed_at < '2026-12-01 00:00+09'
			GROUP BY therapy_user_id)
		SELECT count(*), count(*) FILTER (WHERE s.therapy_user_id IS NULL OR s.perform_count <> t.n
		       OR s.completed_count <> t.c OR s.total_duration_seconds <> t.d OR s.active_days <> t.days)
		FROM truth t LEFT JOIN therapy_statistics s ON s.therapy_user_id = t.therapy_user_id AND s.year = 2026 AND s.month = 11`).
		Scan(&users, &mismatched))
	require.Equal(t, 3000, users)
	require.Zero(t, mismatched)

	require.NoError(t, w1.Stop(30*time.Second))
	require.NoError(t, w2.Stop(30*time.Second))
}

// The runtime contract: a worker killed with SIGKILL loses nothing. Its
// running job stays `running` until River's rescuer, on a surviving worker,
// sees it has run longer than its kind's timeout (30 s for therapy_stats)
// and hands it back; it is then retried and completes, within about two
// minutes. No manual step: this is
// River's own rescuer against the real binaries.
func TestSIGKILLedWorkersJobIsRescuedAndCompleted(t *testing.T) {
	t.Parallel()
	pool, url := testkit.Pool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE');
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		VALUES (1, '2026-11-05 10:00+09', 60, true)`)
	require.NoError(t, err)

	// Hold the user-month's lock so the job is provably running when killed.
	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('therapy_stats:1:2026:11', 0))`)
	require.NoError(t, err)

	env := []string{"DATABASE_URL=" + url, "PERIODIC_JOBS=false"}
	first := testbin.StartWorker(t, env...)
	enqueue := testbin.Build(t, "enqueue")
	code, _, stderr := testbin.Run(t, enqueue, env, "therapy-stats", "--month", "2026-11", "--user", "1")
	require.Equal(t, 0, code, stderr)

	other, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer other.Close(ctx)
	state := func() (s string, attempt int) {
		require.NoError(t, other.QueryRow(ctx, `SELECT state::text, attempt FROM river_job WHERE kind = 'therapy_stats'`).Scan(&s, &attempt))
		return s, attempt
	}
	testkit.WaitFor(t, 30*time.Second, "the job running and waiting for the lock", func() (bool, error) {
		var waiting bool
		require.NoError(t, other.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`).Scan(&waiting))
		s, _ := state()
		return waiting && s == "running", nil
	})

	killedAt := time.Now()
	first.Kill()
	require.NoError(t, holder.Rollback(ctx))
	s, _ := state()
	require.Equal(t, "running", s, "nothing hands the job back at once")

	second := testbin.StartWorker(t, env...)
	testkit.WaitFor(t, 3*time.Minute, "the rescued job completed", func() (bool, error) { s, _ := state(); return s == "completed", nil })
	rescuedIn := time.Since(killedAt)
	t.Logf("rescued and completed %s after the SIGKILL", rescuedIn.Round(time.Second))
	require.Less(t, rescuedIn, 150*time.Second, "within about two minutes")

	s, attempt := state()
	require.Equal(t, "completed", s)
	require.Equal(t, 2, attempt, "the rescued attempt was retried once")
	var rescueErr string
	require.NoError(t, other.QueryRow(ctx, `SELECT errors[1]->>'error' FROM river_job WHERE kind = 'therapy_stats'`).Scan(&rescueErr))
	require.Contains(t, rescueErr, "Stuck job rescued")
	var performs int
	require.NoError(t, other.QueryRow(ctx, `SELECT perform_count FROM therapy_statistics WHERE therapy_user_id = 1`).Scan(&performs))
	require.Equal(t, 1, performs)
	require.NoError(t, second.Stop(30*time.Second))
}
