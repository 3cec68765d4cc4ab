package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/metrics"
	"github.com/tidemark/tidemark/store"
)

func init() { register("metrics", benchMetrics) }

// The metrics bench's river_job: 30 days of retained history with a backlog.
const (
	metricsWorked   = 10_000 // therapy_stats jobs River works (no-op), over 30 business dates
	metricsCopies   = 99     // bench-only copies of each: 1,000,000 finished therapy_stats
	metricsCoupons  = 10     // ACTIVE coupons, each reconciled every 5 minutes for 30 days
	metricsPerCoup  = 8_640  // finished coupon_reconcile jobs per coupon
	metricsBacklog  = 10_000 // available jobs in a queue nobody works
	metricsBacklogQ = "bench_backlog"
)

// benchMetrics times one /metrics scrape with more than a million finished
// jobs in river_job. River's public API cannot insert finished jobs, so the
// history is made in two steps: River works 10,000 therapy_stats and one
// coupon_reconcile per coupon (no-op workers, real completions), then
// bench-only SQL copies those finished rows back over 30 days. The copies
// have the shape River gives finished jobs, at a fraction of the time it
// takes to work a million.
func benchMetrics(ctx context.Context, env *benchEnv) error {
	start := time.Now()
	if err := fillMetricsHistory(ctx, env); err != nil {
		return err
	}
	var finished, live int64
	if err := env.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE finalized_at IS NOT NULL), count(*) FILTER (WHERE finalized_at IS NULL)
		FROM river_job`).Scan(&finished, &live); err != nil {
		return err
	}
	fmt.Printf("river_job: %d finished jobs, %d available, made in %s\n", finished, live, time.Since(start).Round(time.Millisecond))

	queues := slices.Sorted(maps.Keys(config.DefaultQueues()))
	scrape := func(m *metrics.Metrics) (time.Duration, error) {
		rec := httptest.NewRecorder()
		t0 := time.Now()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			return 0, fmt.Errorf("metrics: scrape: %d %s", rec.Code, rec.Body.String())
		}
		return time.Since(t0), nil
	}
	newMetrics := func() *metrics.Metrics {
		return metrics.New(metrics.NewCollector(metrics.CollectorOpts{Store: env.store, TZ: env.cfg.TZ, Queues: queues, Logger: env.logger}))
	}

	// Straight after the bulk insert, before autovacuum has analyzed or
	// vacuumed the table.
	first, err := scrape(newMetrics())
	if err != nil {
		return err
	}
	fmt.Printf("scrape before ANALYZE (fresh statistics missing): %s\n", first.Round(10*time.Microsecond))

	// As autovacuum leaves it.
	if _, err := env.pool.Exec(ctx, `VACUUM ANALYZE river_job`); err != nil {
		return err
	}
	m := newMetrics()
	cold, err := scrape(m)
	if err != nil {
		return err
	}
	cached, err := scrape(m)
	if err != nil {
		return err
	}
	time.Sleep(metrics.DefaultTTL)
	warm, err := scrape(m)
	if err != nil {
		return err
	}
	fmt.Printf("scrape after VACUUM ANALYZE: first %s, from the %s cache %s, next read %s\n",
		cold.Round(10*time.Microsecond), metrics.DefaultTTL, cached.Round(10*time.Microsecond), warm.Round(10*time.Microsecond))

	// Each read of one refresh, best of 5.
	today := calendar.BusinessDate(time.Now(), env.cfg.TZ)
	for _, r := range []struct {
		name string
		read func() error
	}{
		{"live jobs by queue, kind, state (river_job)", func() error { _, err := env.store.LiveJobs(ctx); return err }},
		{"today's therapy run (river_job, GIN on args)", func() error { _, err := env.store.TherapyRunOf(ctx, today); return err }},
		{"latest reconciliations (river_job, partial index)", func() error { _, err := env.store.LatestReconcileOutputs(ctx); return err }},
		{"coupon issues (coupon, coupon_issue)", func() error { _, err := env.store.ActiveCouponIssues(ctx); return err }},
		{"order requests (order_request)", func() error { _, err := env.store.OrderGauges(ctx); return err }},
		{"last settled date (point_daily_settlement)", func() error {
			_, err := env.store.LastSettledDate(ctx, today)
			if errors.Is(err, store.ErrNotFound) {
				err = nil
			}
			return err
		}},
	} {
		best := time.Duration(1<<63 - 1)
		for range 5 {
			t0 := time.Now()
			if err := r.read(); err != nil {
				return fmt.Errorf("metrics: %s: %w", r.name, err)
			}
			best = min(best, time.Since(t0))
		}
		fmt.Printf("  %s: %s\n", r.name, best.Round(10*time.Microsecond))
	}
	return nil
}

// fillMetricsHistory makes river_job's history and backlog (see benchMetrics).
func fillMetricsHistory(ctx context.Context, env *benchEnv) error {
	for i := range metricsCoupons {
		if _, err := env.store.CreateCoupon(ctx, store.NewCoupon{Code: fmt.Sprintf("BENCH%02d", i), Name: "bench",
			AmountType: store.AmountFix, Amount: 1, TotalQuantity: 1000, Status: store.CouponActive}); err != nil {
			return err
		}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, noopTherapyWorker{})
	river.AddWorker(workers, noopReconcileWorker{})
	client, err := river.NewClient(riverpgxv5.New(env.pool), &river.Config{Workers: workers, Logger: env.logger,
		Queues: map[string]river.QueueConfig{config.QueueTherapy: {MaxWorkers: 100}, config.QueueDefault: {MaxWorkers: 10}}})
	if err != nil {
		return err
	}
	today, err := time.ParseInLocation(time.DateOnly, calendar.BusinessDate(time.Now(), env.cfg.TZ), env.cfg.TZ)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, 0, metricsWorked+metricsCoupons)
	for i := range metricsWorked {
		date := today.AddDate(0, 0, -(i % 30))
		params = append(params, river.InsertManyParams{Args: jobs.TherapyStatsArgs{TherapyUserID: int64(i + 1),
			Year: date.Year(), Month: int(date.Month()), BusinessDate: date.Format(time.DateOnly)}})
	}
	for i := range metricsCoupons {
		params = append(params, river.InsertManyParams{Args: jobs.CouponReconcileArgs{CouponCode: fmt.Sprintf("BENCH%02d", i)}})
	}
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		return err
	}
	_, stop, err := startAndAwait(ctx, client, len(params), 5*time.Minute, func(*river.Event) bool { return true }, river.EventKindJobCompleted)
	stop()
	if err != nil {
		return fmt.Errorf("metrics: work the history: %w", err)
	}

	// Bench-only SQL: copies of the finished rows, a business date at a
	// time, oldest first, each date's moved back to that date: a day's run
	// lies together in the table as it does when River works it that day.
	conn, err := env.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE worked AS SELECT * FROM river_job WHERE kind = 'therapy_stats'`); err != nil {
		return err
	}
	for daysAgo := 29; daysAgo >= 0; daysAgo-- {
		if _, err := conn.Exec(ctx, `
			INSERT INTO river_job (args, attempt, attempted_at, attempted_by, created_at, finalized_at, kind,
				max_attempts, metadata, priority, queue, state, scheduled_at, tags)
			SELECT jsonb_set(args, '{therapy_user_id}', to_jsonb((args ->> 'therapy_user_id')::bigint + g * $3)),
			       attempt, attempted_at - d, attempted_by, created_at - d, finalized_at - d, kind,
			       max_attempts, metadata, priority, queue, state, scheduled_at - d, tags
			FROM worked, generate_series(1, $2::int) g, LATERAL (SELECT make_interval(days => $1) AS d) shift
			WHERE args ->> 'business_date' = to_char(($4::date - $1::int), 'YYYY-MM-DD')
			ORDER BY g, id`, daysAgo, metricsCopies, metricsWorked, today.Format(time.DateOnly)); err != nil {
			return fmt.Errorf("metrics: copies of %d days ago: %w", daysAgo, err)
		}
	}
	if _, err := env.pool.Exec(ctx, `
		INSERT INTO river_job (args, attempt, attempted_at, attempted_by, created_at, finalized_at, kind,
			max_attempts, metadata, priority, queue, state, scheduled_at, tags)
		SELECT args, attempt, attempted_at - d, attempted_by, created_at - d, finalized_at - d, kind,
		       max_attempts, metadata, priority, queue, state, scheduled_at - d, tags
		FROM river_job, generate_series(1, $1 - 1) g, LATERAL (SELECT make_interval(mins => 5 * g) AS d) shift
		WHERE kind = 'coupon_reconcile' AND state = 'completed'`, metricsPerCoup); err != nil {
		return fmt.Errorf("metrics: copy reconciliations: %w", err)
	}

	// The backlog, through River: available jobs nobody works.
	backlog := make([]river.InsertManyParams, metricsBacklog)
	for i := range backlog {
		backlog[i] = river.InsertManyParams{Args: jobs.TherapyStatsArgs{TherapyUserID: int64(i + 1), Year: 2020, Month: 1,
			BusinessDate: "2020-02-01"}, InsertOpts: &river.InsertOpts{Queue: metricsBacklogQ}}
	}
	_, err = client.InsertManyFast(ctx, backlog)
	return err
}

type noopTherapyWorker struct {
	river.WorkerDefaults[jobs.TherapyStatsArgs]
}

func (noopTherapyWorker) Work(context.Context, *river.Job[jobs.TherapyStatsArgs]) error { return nil }

// noopReconcileWorker records an agreeing report, as a clean run does.
type noopReconcileWorker struct {
	river.WorkerDefaults[jobs.CouponReconcileArgs]
}

func (noopReconcileWorker) Work(ctx context.Context, job *river.Job[jobs.CouponReconcileArgs]) error {
	return river.RecordOutput(ctx, jobs.CouponReport{Code: job.Args.CouponCode, RedisLoaded: true, Agrees: true})
}
