package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/joblog"
	"github.com/tidemark/tidemark/partnerbudget"
	"github.com/tidemark/tidemark/store"
)

// Deps is what workers need from outside: the store and the business time
// zone, built once in cmd/.
type Deps struct {
	Store  *store.Store
	TZ     *time.Location
	Logger *slog.Logger
	// Gate is the Redis coupon gate. Coupon jobs fail (and are retried) while
	// it is nil; the other kinds do not need it.
	Gate *coupongate.Gate
	// River inserts follow-up jobs from code run outside a job (the reconcile
	// checks run by the CLI). Inside a job the job's own client is used.
	River *Client
	// ReconcileGrace is how long the coupon reconciliation waits before
	// re-checking members found only in Redis (COUPON_RECONCILE_GRACE;
	// DefaultReconcileGrace when 0).
	ReconcileGrace time.Duration
	// OrderAPI is the third-party order API (ORDER_API_URL); order jobs
	// retry until it is set.
	OrderAPI OrderAPI
	// PartnerBudget is the call budget toward the order partner shared by
	// every process (ORDER_API_RATE, ORDER_API_CONCURRENCY); nil limits
	// nothing.
	PartnerBudget *partnerbudget.Budget
	// AuditRetention is how long the job archive keeps a finished job
	// (AUDIT_RETENTION; DefaultAuditRetention when 0).
	AuditRetention time.Duration
	// StaleAttempt, if set, counts an attempt that found a later attempt
	// owning its job and ended without writing (see fence.go).
	StaleAttempt func(kind string)
}

// ClientConfig is how a River client in this process is set up.
type ClientConfig struct {
	// Queues maps queue names to worker counts. Empty: an insert-only client.
	Queues map[string]int
	// Retention is how long finished jobs stay in river_job before River's
	// cleaner deletes them, which moves them to the audit archive.
	Retention time.Duration
	// RescueAfter is the least time a job runs before River's rescuer may
	// hand it back as orphaned (its worker presumed dead); a job is rescued
	// only once it has also run longer than its kind's Timeout. More than
	// DefaultJobTimeout (River's rule).
	RescueAfter time.Duration
	// Periodic enables periodic jobs (run by the elected leader only).
	Periodic bool
	// FetchCooldown and FetchPollInterval tune fetching; zero keeps River's.
	FetchCooldown, FetchPollInterval time.Duration
	// PollOnly makes the client listen for nothing (no LISTEN/NOTIFY), as a
	// transaction pooler requires: it fetches every FetchPollInterval
	// (PollOnlyFetchPollInterval when zero) and elects its leader by polling.
	PollOnly bool
	// Middleware wraps job inserts and work (River's Config.Middleware),
	// inside joblog's, which every client installs.
	Middleware []rivertype.Middleware
}

// PollOnlyFetchPollInterval is how often a poll-only client's queues look
// for new jobs when ClientConfig sets no FetchPollInterval. River's 1 s
// default would add up to a second to every hop of a fan-out (therapy_daily
// → therapy_stats) that LISTEN/NOTIFY wakes at once; a fetch of an empty
// queue is one indexed query.
const PollOnlyFetchPollInterval = 100 * time.Millisecond

// DefaultJobTimeout bounds an attempt of a kind that sets no Timeout of its
// own (every kind sets one); River requires the rescue window to be longer.
const DefaultJobTimeout = 10 * time.Second

// Client is tidemark's River client type.
type Client = river.Client[pgx.Tx]

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
		cfg.Middleware = append(append(joblog.Middleware(), newFence(deps)), cc.Middleware...)
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
