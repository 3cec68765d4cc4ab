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

// The metrics bench's river_job: 30 days of retained history with a backlog,
// every finished job worked by River.
const (
	metricsWorked   = 1_000_000 // therapy_stats jobs River works (no-op), over 30 business dates
	metricsCoupons  = 10        // ACTIVE coupons, each reconciled every 5 minutes for 30 days
	metricsPerCoup  = 8_640     // finished coupon_reconcile jobs per coupon
	metricsBacklog  = 10_000    // available jobs in a queue nobody works
	metricsBacklogQ = "bench_backlog"
	metricsInsertAt = 10_000 // jobs per InsertManyFast
)

// benchMetrics times one /metrics scrape with more than a million finished
// jobs in river_job. The history is made through River's public API: its
// jobs are inserted (the reconciliations scheduled in the past, one per
// 5-minute period) and worked to completion by no-op workers.
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
		FetchCooldown: env.cfg.FetchCooldown, JobTimeout: time.Minute,
		Queues: map[string]river.QueueConfig{jobs.QueueTherapy: {MaxWorkers: 200}, jobs.QueueDefault: {MaxWorkers: 50}}})
	if err != nil {
		return err
	}
	today, err := time.ParseInLocation(time.DateOnly, calendar.BusinessDate(time.Now(), env.cfg.TZ), env.cfg.TZ)
	if err != nil {
		return err
	}
	now := time.Now()
	params := make([]river.InsertManyParams, 0, metricsWorked+metricsCoupons*metricsPerCoup)
	for i := range metricsWorked {
		date := today.AddDate(0, 0, -(i % 30))
		params = append(params, river.InsertManyParams{Args: jobs.TherapyStatsArgs{TherapyUserID: int64(i + 1),
			Year: date.Year(), Month: int(date.Month()), BusinessDate: date.Format(time.DateOnly)}})
	}
	for g := range metricsPerCoup {
		at := now.Add(-time.Duration(g) * jobs.ReconcilePeriod)
		for i := range metricsCoupons {
			params = append(params, river.InsertManyParams{Args: jobs.CouponReconcileArgs{CouponCode: fmt.Sprintf("BENCH%02d", i)},
				InsertOpts: &river.InsertOpts{ScheduledAt: at}})
		}
	}
	for chunk := range slices.Chunk(params, metricsInsertAt) {
		if _, err := client.InsertManyFast(ctx, chunk); err != nil {
			return fmt.Errorf("metrics: insert the history: %w", err)
		}
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	err = waitIdle(ctx, env)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if serr := client.Stop(stopCtx); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("metrics: work the history: %w", err)
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
