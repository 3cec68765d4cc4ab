package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func init() { register("history", benchHistory) }

// The audit queries of the README and docs/design/operations.md, each asking
// about a bounded period: their cost should follow the period, not how much
// history the archive holds.
var auditQueries = []struct{ name, sql string }{
	{"month's aggregation by status", `SELECT status, count(*) FROM therapy_batch_log WHERE year = 2026 AND month = 10 GROUP BY status`},
	{"month's failed users", `SELECT therapy_user_id, attempts, finished_at, last_error FROM therapy_batch_log
		WHERE year = 2026 AND month = 10 AND status = 'FAIL' ORDER BY finished_at DESC`},
	{"daily runs, last 31 days", `SELECT id, args->>'business_date', state, finalized_at, metadata->'output' FROM job_history
		WHERE kind = 'therapy_daily' AND created_at > now() - interval '31 days' ORDER BY id DESC`},
	{"settlement runs, last 31 days", `SELECT job_execution_id, identifying_params ->> 'run_date', status, read_count, write_count
		FROM batch_job_execution WHERE job_name = 'point_settlement' AND create_time > now() - interval '31 days'
		ORDER BY job_execution_id DESC`},
	{"failed or stopped, last 7 days", `SELECT job_name, identifying_params, status, exit_description, end_time
		FROM batch_job_execution WHERE status IN ('FAILED', 'STOPPED') AND end_time > now() - interval '7 days'`},
}

// benchHistory measures what a month of a busy deployment's history costs:
// the audit queries at 10,000 and at BENCH_HISTORY_ARCHIVED archived jobs,
// and the therapy run with empty job tables against the same run with that
// history where it now lives (the archive, and a day's finished jobs still
// in river_job).
func benchHistory(ctx context.Context, e *benchEnv) error {
	users := envInt("BENCH_HISTORY_USERS", 30_000)
	archived := envInt("BENCH_HISTORY_ARCHIVED", 3_000_000)
	recent := envInt("BENCH_HISTORY_RECENT", 100_000)
	const auditSet = 10_000
	workers := e.therapyWorkers()

	if _, _, err := e.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: users, PerformsPerUser: 30,
		Year: 2026, Month: 11}, e.cfg.TZ); err != nil {
		return err
	}
	// What autovacuum would have done by now (it is off on the bench machine).
	for _, table := range []string{"therapy_perform", "therapy_user", "river_job"} {
		if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE `+table); err != nil {
			return err
		}
	}
	fmt.Printf("data: %d users x 30 performs; VACUUM ANALYZE run where autovacuum would (it is off here)\n", users)

	empty, err := benchDaily(ctx, e, "2026-12-01", users, workers)
	if err != nil {
		return err
	}
	fmt.Printf("therapy run, empty job tables          %6.0f users/s (%s)\n", rate(users, empty), empty.Round(time.Millisecond))
	if _, err := e.pool.Exec(ctx, `TRUNCATE river_job, job_archive, completed_run, therapy_statistics`); err != nil {
		return err
	}

	// The audit set: what the queries ask about (October's aggregation, the
	// last week), the same in both measurements.
	t0 := time.Now()
	if err := fillArchive(ctx, e, 1, auditSet, true); err != nil {
		return err
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE job_archive`); err != nil {
		return err
	}
	small, err := timeAuditQueries(ctx, e)
	if err != nil {
		return err
	}
	// A year of older history of every kind, around it.
	if err := fillArchive(ctx, e, auditSet+1, archived-auditSet, false); err != nil {
		return err
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE job_archive`); err != nil {
		return err
	}
	fmt.Printf("archive: %d jobs generated in %s; VACUUM ANALYZE job_archive as autovacuum would\n", archived, time.Since(t0).Round(time.Second))
	big, err := timeAuditQueries(ctx, e)
	if err != nil {
		return err
	}
	fmt.Printf("audit queries, best of 5             %10s %10s  ratio\n", fmt.Sprintf("%dk", auditSet/1000), fmt.Sprintf("%dk", archived/1000))
	worst := 0.0
	for i, q := range auditQueries {
		r := big[i].Seconds() / small[i].Seconds()
		worst = max(worst, r)
		fmt.Printf("  %-34s %10s %10s  %.2fx\n", q.name, small[i].Round(10*time.Microsecond), big[i].Round(10*time.Microsecond), r)
	}
	fmt.Printf("audit: the slowest query at %d archived jobs is %.2fx its time at %d (target at most 2x)\n", archived, worst, auditSet)

	// A day's finished jobs in river_job, worked by River.
	t0 = time.Now()
	if err := workRecentHistory(ctx, e, recent); err != nil {
		return err
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE river_job`); err != nil {
		return err
	}
	fmt.Printf("river_job: %d finished jobs worked by River in %s; VACUUM ANALYZE river_job as autovacuum would\n",
		recent, time.Since(t0).Round(time.Second))
	full, err := benchDaily(ctx, e, "2026-12-01", users, workers)
	if err != nil {
		return err
	}
	fmt.Printf("therapy run, %dk finished jobs        %6.0f users/s (%s)\n", (archived+recent)/1000, rate(users, full), full.Round(time.Millisecond))
	fmt.Printf("ratio: with history / empty = %.2f (target at least 0.9)\n", empty.Seconds()/full.Seconds())
	return nil
}

// fillArchive inserts n finished jobs into job_archive with ids from first.
// The audit set (audit) is October 2026's therapy aggregation and the last
// week's runs; the rest is a year of history before it, of every kind, 2 %
// discarded and 1 % cancelled. The archive is tidemark's own table.
func fillArchive(ctx context.Context, e *benchEnv, first, n int, audit bool) error {
	// Partitions for every month the history covers.
	if _, err := e.pool.Exec(ctx, `SELECT tidemark_archive_ensure_month((date '2025-09-01' + make_interval(months => m))::date)
		FROM generate_series(0, 18) AS m`); err != nil {
		return err
	}
	at := `timestamptz '2025-10-01' + (g - $1) * (interval '365 days' / $2::int)`
	if audit {
		at = `CASE WHEN g % 2 = 0 THEN timestamptz '2026-11-01 01:00' + (g - $1) * interval '1 second'
		           ELSE now() - interval '6 days' + (g - $1) * interval '30 seconds' END`
	}
	_, err := e.pool.Exec(ctx, `
		INSERT INTO job_archive (id, kind, queue, state, attempt, max_attempts, priority, args, metadata, errors, tags,
		                         created_at, scheduled_at, attempted_at, finalized_at)
		SELECT g, k.kind, k.queue, s.state, CASE WHEN s.state = 'completed' THEN 1 ELSE 5 END, 5, 1, k.args,
		       CASE WHEN k.kind IN ('point_settlement', 'therapy_daily') THEN '{"output": {"read": 100, "written": 100}}'::jsonb ELSE '{}' END,
		       CASE WHEN s.state <> 'completed' THEN ARRAY[jsonb_build_object('error', 'bench failure', 'attempt', 5)] END,
		       '{}', t.at - interval '2 seconds', t.at - interval '2 seconds', t.at - interval '1 second', t.at
		FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS g
		CROSS JOIN LATERAL (SELECT `+at+` AS at) t
		CROSS JOIN LATERAL (SELECT CASE WHEN g % 100 = 0 THEN 'cancelled' WHEN g % 50 = 1 THEN 'discarded' ELSE 'completed' END::river_job_state AS state) s
		CROSS JOIN LATERAL (SELECT * FROM (VALUES
			(g % 20 < 14 OR ($3 AND g % 2 = 0), 'therapy_stats', 'therapy', jsonb_build_object('therapy_user_id', g,
				'year', CASE WHEN $3 AND g % 2 = 0 THEN 2026 ELSE extract(year FROM t.at)::int END,
				'month', CASE WHEN $3 AND g % 2 = 0 THEN 10 ELSE extract(month FROM t.at)::int END,
				'business_date', to_char(t.at, 'YYYY-MM-DD'))),
			(g % 20 BETWEEN 14 AND 16, 'coupon_issue_persist', 'default', jsonb_build_object('coupon_code', 'C' || g % 50, 'member_id', g)),
			(g % 20 BETWEEN 17 AND 18, 'order_submit', 'outbound', jsonb_build_object('order_request_id', g)),
			(g % 2000 = 19, 'therapy_daily', 'default', jsonb_build_object('business_date', to_char(t.at, 'YYYY-MM-DD'))),
			(g % 2000 = 39, 'point_settlement', 'default', jsonb_build_object('run_date', to_char(t.at, 'YYYY-MM-DD'), 'run', 1)),
			(g % 20 = 19, 'coupon_reconcile', 'default', jsonb_build_object('coupon_code', 'C' || g % 50))
		) v(pick, kind, queue, args) WHERE pick LIMIT 1) k`, first, n, audit)
	if err != nil {
		return fmt.Errorf("history: fill the archive: %w", err)
	}
	return nil
}

// timeAuditQueries runs each audit query five times and keeps the best.
func timeAuditQueries(ctx context.Context, e *benchEnv) ([]time.Duration, error) {
	out := make([]time.Duration, len(auditQueries))
	for i, q := range auditQueries {
		best := time.Duration(1<<63 - 1)
		for range 5 {
			t0 := time.Now()
			rows, err := e.pool.Query(ctx, q.sql)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			for rows.Next() {
			}
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			best = min(best, time.Since(t0))
		}
		out[i] = best
	}
	return out, nil
}

// workRecentHistory leaves n finished jobs of a day in river_job: inserted
// and worked by River, with no-op workers, as the real kinds would leave them.
func workRecentHistory(ctx context.Context, e *benchEnv, n int) error {
	workers := river.NewWorkers()
	river.AddWorker(workers, noopTherapyWorker{})
	river.AddWorker(workers, noopReconcileWorker{})
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{Workers: workers, Logger: e.logger,
		FetchCooldown: e.cfg.FetchCooldown, JobTimeout: time.Minute,
		Queues: map[string]river.QueueConfig{jobs.QueueTherapy: {MaxWorkers: 200}, jobs.QueueDefault: {MaxWorkers: 50}}})
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, 0, n)
	for i := range n {
		if i%10 == 9 {
			params = append(params, river.InsertManyParams{Args: jobs.CouponReconcileArgs{CouponCode: fmt.Sprintf("C%d", i)}})
			continue
		}
		// Another month's aggregation: the run measured after it inserts
		// no duplicate of these.
		params = append(params, river.InsertManyParams{Args: jobs.TherapyStatsArgs{TherapyUserID: int64(i + 1),
			Year: 2026, Month: 10, BusinessDate: "2026-11-30"}})
	}
	for chunk := range slices.Chunk(params, 5000) {
		if _, err := client.InsertManyFast(ctx, chunk); err != nil {
			return fmt.Errorf("history: insert the day's jobs: %w", err)
		}
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	err = waitIdle(ctx, e)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if serr := client.Stop(stopCtx); err == nil {
		err = serr
	}
	return err
}
