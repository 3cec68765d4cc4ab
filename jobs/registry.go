package jobs

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/robfig/cron/v3"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/joblog"
)

// Register adds every tidemark worker to workers.
func Register(workers *river.Workers, deps Deps) error {
	if deps.Store == nil || deps.TZ == nil || deps.Logger == nil {
		return fmt.Errorf("jobs: register: Store, TZ and Logger are required")
	}
	for _, r := range registrations {
		if err := r.add(workers, deps); err != nil {
			return err
		}
	}
	return nil
}

// NewClient builds a River client on pool with every tidemark worker
// registered. With no queues it is an insert-only client (CLI, HTTP tests).
func NewClient(pool *pgxpool.Pool, cc ClientConfig, deps Deps) (*Client, error) {
	cfg := &river.Config{
		Logger:                      deps.Logger,
		CompletedJobRetentionPeriod: cc.Retention,
		CancelledJobRetentionPeriod: cc.Retention,
		DiscardedJobRetentionPeriod: cc.Retention,
		RescueStuckJobsAfter:        cc.RescueAfter,
		JobTimeout:                  DefaultJobTimeout,
		FetchCooldown:               cc.FetchCooldown,
		FetchPollInterval:           cc.FetchPollInterval,
		MaxAttempts:                 5,
		PollOnly:                    cc.PollOnly,
		// Each job's log lines carry its kind, id and attempt and are kept
		// on the job, bounded, for River UI.
		Middleware: append(joblog.Middleware(), cc.Middleware...),
	}
	if cc.PollOnly && cfg.FetchPollInterval == 0 {
		cfg.FetchPollInterval = PollOnlyFetchPollInterval
	}
	if len(cc.Queues) > 0 {
		cfg.Queues = make(map[string]river.QueueConfig, len(cc.Queues))
		for name, n := range cc.Queues {
			qc := river.QueueConfig{MaxWorkers: n}
			if name == QueueOutbound {
				qc.FetchCooldown = OutboundFetchCooldown
				qc.FetchPollInterval = OutboundFetchPollInterval
			}
			cfg.Queues[name] = qc
		}
		// Inside joblog's: the fence holds an attempt's job-log lines back
		// until it knows the attempt still owns its job (fence.go).
		cfg.Middleware = append(append(joblog.Middleware(), newFence(deps, unleasedKinds())), cc.Middleware...)
		workers := river.NewWorkers()
		if err := Register(workers, deps); err != nil {
			return nil, err
		}
		cfg.Workers = workers
		if cc.Periodic {
			periodic, err := PeriodicJobs(deps)
			if err != nil {
				return nil, err
			}
			cfg.PeriodicJobs = periodic
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: new river client: %w", err)
	}
	return client, nil
}

// Kinds lists every job kind Register adds a worker for, sorted: the kinds
// an operator may name.
func Kinds() []string {
	kinds := make([]string, len(registrations))
	for i, r := range registrations {
		kinds[i] = r.kind
	}
	slices.Sort(kinds)
	return kinds
}

// KindQueues maps every kind Kinds lists to the queue its jobs are inserted
// on, so that gauges can report each kind at zero before any job exists.
func KindQueues() map[string]string {
	m := make(map[string]string, len(registrations))
	for _, r := range registrations {
		m[r.kind] = r.queue
	}
	return m
}

// registrations is every kind with its worker, one list for Register and
// Kinds, so the kinds an operator may name are exactly those a worker runs.
var registrations = []registration{
	registered[TherapyStatsArgs](NewTherapyStatsWorker),
	registered[TherapyDailyArgs](NewTherapyDailyWorker),
	registered[TherapyStatsVerifyArgs](NewTherapyStatsVerifyWorker),
	registered[PointSettlementArgs](NewPointSettlementWorker),
	registered[PointSettlementDailyArgs](NewPointSettlementDailyWorker),
	registered[CouponIssuePersistArgs](NewCouponIssuePersistWorker),
	registered[CouponReconcileAllArgs](NewCouponReconcileAllWorker),
	registered[CouponReconcileArgs](NewCouponReconcileWorker),
	registered[CouponExchangeArgs](NewCouponExchangeWorker),
	registered[OrderSubmitArgs](NewOrderSubmitWorker),
	registered[OrderReconcileArgs](NewOrderReconcileWorker),
	registered[ArchiveMaintainArgs](NewArchiveMaintainWorker),
}

// unleasedKinds are the kinds that claim no lease (fence.go), by name.
func unleasedKinds() map[string]bool {
	m := map[string]bool{}
	for _, r := range registrations {
		if r.unleased {
			m[r.kind] = true
		}
	}
	return m
}

// registration is one kind and how its worker is built and added.
type registration struct {
	kind, queue string
	// unleased: the kind's args claim no lease (unleasedArgs).
	unleased bool
	add      func(*river.Workers, Deps) error
}

func registered[T river.JobArgs, W river.Worker[T]](newWorker func(Deps) W) registration {
	var args T
	queue := river.QueueDefault
	if o, ok := any(args).(river.JobArgsWithInsertOpts); ok && o.InsertOpts().Queue != "" {
		queue = o.InsertOpts().Queue
	}
	_, unleased := any(args).(unleasedArgs)
	return registration{kind: args.Kind(), queue: queue, unleased: unleased, add: func(workers *river.Workers, deps Deps) error {
		return river.AddWorkerSafely[T](workers, newWorker(deps))
	}}
}

// ReconcileCheck runs one reconciliation check now and returns its report.
// With dryRun it reports without repairing anything.
type ReconcileCheck func(ctx context.Context, deps Deps, dryRun bool) (any, error)

// ReconcileChecks are the checks `enqueue reconcile --check NAME` runs
// in-process, by name. Each also runs periodically as a job of its own.
var ReconcileChecks = map[string]ReconcileCheck{
	"coupon": func(ctx context.Context, deps Deps, dryRun bool) (any, error) {
		return CheckCoupons(ctx, deps, dryRun)
	},
	"therapy": func(ctx context.Context, deps Deps, dryRun bool) (any, error) {
		return VerifyTherapyStats(ctx, deps, dryRun)
	},
	"orders": func(ctx context.Context, deps Deps, dryRun bool) (any, error) {
		return CheckOrders(ctx, deps, dryRun)
	},
}

// PeriodicJobs lists every periodic job. River runs them on the elected
// leader only, so any number of workers may be running.
func PeriodicJobs(deps Deps) ([]*river.PeriodicJob, error) {
	daily, err := dailyAt("0 0 * * *", deps.TZ)
	if err != nil {
		return nil, err
	}
	settlement, err := dailyAt(dailySpec(calendar.SettlementStart), deps.TZ)
	if err != nil {
		return nil, err
	}
	return []*river.PeriodicJob{
		// 00:00 BATCH_TZ: aggregate the month of the day that just ended. Also
		// on start, so a midnight missed while no worker ran is caught up; the
		// unique business date makes that a no-op when midnight's run exists.
		river.NewPeriodicJob(daily, func() (river.JobArgs, *river.InsertOpts) {
			return TherapyDailyArgs{BusinessDate: calendar.BusinessDate(time.Now(), deps.TZ)}, nil
		}, &river.PeriodicJobOpts{ID: "therapy_daily", RunOnStart: true}),
		// 00:30 BATCH_TZ (calendar.SettlementStart): settle the point ledger
		// for today's business date (yesterday's transactions), first
		// catching up missed dates. On start too, for the date of the last
		// 00:30 boundary; unique per date.
		river.NewPeriodicJob(settlement, func() (river.JobArgs, *river.InsertOpts) {
			return PointSettlementDailyArgs{BusinessDate: calendar.SettlementBusinessDate(time.Now(), deps.TZ)}, nil
		}, &river.PeriodicJobOpts{ID: "point_settlement_daily", RunOnStart: true}),
		// Every 5 minutes: one coupon_reconcile per ACTIVE coupon (the coupon
		// safety net), each unique per coupon per period.
		river.NewPeriodicJob(river.PeriodicInterval(ReconcilePeriod), func() (river.JobArgs, *river.InsertOpts) {
			return CouponReconcileAllArgs{}, nil
		}, &river.PeriodicJobOpts{ID: "coupon_reconcile_all", RunOnStart: true}),
		// Hourly: recompute a sample of therapy_statistics and re-enqueue the
		// aggregation of any row that drifted.
		river.NewPeriodicJob(river.PeriodicInterval(VerifyPeriod), func() (river.JobArgs, *river.InsertOpts) {
			return TherapyStatsVerifyArgs{}, nil
		}, &river.PeriodicJobOpts{ID: "therapy_stats_verify"}),
		// Hourly: compare order_request with the partner's orders and mark
		// APPLIED the SENDING rows whose order exists; the rest is reported.
		river.NewPeriodicJob(river.PeriodicInterval(OrderReconcilePeriod), func() (river.JobArgs, *river.InsertOpts) {
			return OrderReconcileArgs{}, nil
		}, &river.PeriodicJobOpts{ID: "order_reconcile"}),
		// Daily, and on start: job_archive's coming months created ahead, the
		// months past AUDIT_RETENTION dropped.
		river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
			return ArchiveMaintainArgs{}, nil
		}, &river.PeriodicJobOpts{ID: "archive_maintain", RunOnStart: true}),
	}, nil
}

// dailySpec is the cron spec of a daily run at offset after midnight, to
// the minute: "30 0 * * *" for 00:30.
func dailySpec(offset time.Duration) string {
	return fmt.Sprintf("%d %d * * *", int(offset%time.Hour/time.Minute), int(offset/time.Hour))
}

// dailyAt parses a standard cron spec evaluated in tz.
func dailyAt(spec string, tz *time.Location) (cron.Schedule, error) {
	s, err := cron.ParseStandard("CRON_TZ=" + tz.String() + " " + spec)
	if err != nil {
		return nil, fmt.Errorf("jobs: cron %q: %w", spec, err)
	}
	return s, nil
}
