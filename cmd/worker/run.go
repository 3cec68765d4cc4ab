package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/batchui"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/dbpool"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/joblog"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/metrics"
	"github.com/tidemark/tidemark/migrations"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/partnerbudget"
	"github.com/tidemark/tidemark/redact"
	"github.com/tidemark/tidemark/store"
	"github.com/tidemark/tidemark/version"
)

const usage = `usage: worker [migrate]

  worker           run the River worker, periodic jobs and the HTTP API until SIGINT/SIGTERM
  worker migrate   bring the database to the current schema (River's tables included),
                   through MIGRATE_DATABASE_URL when set, else DATABASE_URL
  worker --version print the version, commit and commit time of this binary

Configuration comes from the environment; see README.md.`

// Main runs the worker command and returns its exit code.
// Help and the version go to stdout with exit 0; a usage error to stderr
// with exit 2.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 1 || (len(args) == 1 && args[0] != "migrate") {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, usage)
			return 0
		}
		if len(args) == 1 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
			fmt.Fprintln(stdout, "worker", version.Read())
			return 0
		}
		fmt.Fprintf(stderr, "worker: unknown arguments %s\n%s\n", redact.Text(strconv.Quote(strings.Join(args, " "))), usage)
		return 2
	}
	cfg, err := config.FromEnv(getenv)
	var pc *pgxpool.Config
	var redisOpt *redis.Options
	if err == nil {
		pc, redisOpt, err = parseURLs(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: configuration: %s\n", oneLine(err))
		return 2
	}
	logger := joblog.NewLogger(stderr, cfg.LogFormat == config.LogJSON, cfg.LogLevel)
	var ops *auth.Operators
	if len(args) == 0 {
		if ops, err = loadOperators(cfg.Callers); err != nil {
			fmt.Fprintf(stderr, "worker: configuration: %s\n", oneLine(err))
			return 2
		}
	}
	if len(args) == 1 {
		// golang-migrate holds a session advisory lock while it migrates,
		// which a transaction pooler would hand to someone else's
		// transaction: migrations need a direct connection.
		if cfg.Pooler == config.PoolerTransaction && cfg.MigrateDatabaseURL == "" {
			fmt.Fprintf(stderr, "worker: configuration: MIGRATE_DATABASE_URL: required with DATABASE_POOLER=%s (worker migrate needs a direct connection to Postgres: golang-migrate holds a session advisory lock)\n", cfg.Pooler)
			return 2
		}
		name := "DATABASE_URL"
		if cfg.MigrateDatabaseURL != "" {
			name = "MIGRATE_DATABASE_URL"
		}
		var from, to uint
		from, to, err = migrations.Migrate(cfg.MigrateURL())
		switch {
		case err != nil:
		case from == to:
			logger.Info(fmt.Sprintf("nothing to migrate: the schema is at version %d", to), "version", to)
		default:
			logger.Info(fmt.Sprintf("migrated %d → %d", from, to), "from", from, "to", to)
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", name, err)
		}
	} else {
		err = run(ctx, cfg, ops, pc, redisOpt, logger)
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: %s\n", oneLine(err))
		return 1
	}
	return 0
}

// parseURLs parses DATABASE_URL and REDIS_URL as pgx and go-redis will use
// them, so that a value they refuse is a configuration error (exit 2) before
// anything starts.
func parseURLs(cfg config.Config) (*pgxpool.Config, *redis.Options, error) {
	// Every session bounds its idle transactions, lock waits and
	// statements (config.Session), over what the URL says: directly as
	// startup parameters, through a transaction pooler by the server's own
	// settings, which run checks.
	pc, err := dbpool.Config(cfg.DatabaseURL, cfg.Pooler, cfg.Session)
	if err != nil {
		return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return pc, opt, nil
}

// oneLine is err's message on one line, every URL and password in it
// redacted: the last defence for whatever a library quoted.
func oneLine(err error) string { return redact.Line(err.Error()) }

// run works jobs and serves HTTP until ctx is done, then shuts down: the HTTP
// server stops taking requests, River stops fetching and waits for running
// jobs for SHUTDOWN_GRACE, after which it cancels them so they are retried
// elsewhere. Every kind is safe to hand back at any point (a SIGKILL is
// too), so a short grace loses nothing; it only ends sooner a job that is
// waiting, on a row lock or a slow partner, for longer than the grace.
func run(ctx context.Context, cfg config.Config, ops *auth.Operators, pc *pgxpool.Config, redisOpt *redis.Options, logger *slog.Logger) error {
	pc.MaxConns = int32(cfg.DBMaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: connect: %w", err)
	}
	defer pool.Close()
	st := store.New(pool)
	if err := st.Ping(ctx); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	if cfg.Pooler == config.PoolerTransaction {
		// The pooler's server connections carry the timeouts that keep a
		// frozen worker from holding the others back, or this process does
		// not start: a warning would leave the fence's premise unchecked.
		if err := dbpool.CheckSession(ctx, pool, cfg.Session); err != nil {
			return fmt.Errorf("DATABASE_URL through DATABASE_POOLER=%s: %w", cfg.Pooler, err)
		}
	}
	rdb := newRedis(redisOpt)
	defer rdb.Close()
	pingCtx, cancelPing := context.WithTimeout(ctx, 3*time.Second)
	if err := rdb.Ping(pingCtx); err != nil {
		// Coupons need Redis; the other batches do not. Coupon requests answer
		// 503 and coupon jobs retry until Redis answers.
		logger.Warn("redis does not answer; coupon issuing is unavailable until it does",
			"REDIS_URL", redact.URL(cfg.RedisURL), "err", err)
	}
	cancelPing()
	gate := coupongate.New(rdb, "")
	deps := jobs.Deps{Store: st, TZ: cfg.TZ, Logger: logger, Gate: gate, ReconcileGrace: cfg.CouponReconcileGrace,
		AuditRetention: cfg.AuditRetention,
		OrderAPI:       orderapi.New(cfg.OrderAPIURL, cfg.OrderCallTimeout, cfg.Queues[jobs.QueueOutbound])}
	// Every queue's depth and lag, whichever this process works: they are
	// the database's, and any process's /metrics may be the one scraped.
	m := metrics.New(metrics.NewCollector(metrics.CollectorOpts{Store: st, Gate: gate, TZ: cfg.TZ, Queues: config.KnownQueues(), Logger: logger, Deadlines: cfg.Deadlines,
		PerCoupon: cfg.Callers.MetricsToken != ""})).WithPool(pool.Stat)
	deps.StaleAttempt = m.StaleAttempt
	// One budget toward the partner for every process on this Redis and
	// key prefix; its pause and breaker hold even with no rate set.
	deps.PartnerBudget = partnerbudget.New(rdb, partnerbudget.Settings{Rate: cfg.Partner.Rate, Concurrency: cfg.Partner.Concurrency,
		Prefix: cfg.Partner.KeyPrefix, CallTimeout: cfg.OrderCallTimeout}, m.Partner())
	m.WatchBreaker(deps.PartnerBudget)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues:      cfg.Queues,
		Retention:   cfg.Retention,
		RescueAfter: cfg.RescueAfter,
		Periodic:    cfg.Periodic,
		Middleware:  []rivertype.Middleware{m.InsertMiddleware()},

		FetchCooldown: cfg.FetchCooldown,
		PollOnly:      cfg.Pooler == config.PoolerTransaction,
	}, deps)
	if err != nil {
		return err
	}
	if !cfg.APIOnly {
		stopCounting := m.CountWorked(client, logger)
		defer stopCounting()
	}

	// River UI's caches and the member key set's refreshes stop when run
	// returns, after the HTTP listener drained.
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	callers, err := newCallers(uiCtx, cfg.Callers, ops, st, logger)
	if err != nil {
		return err
	}
	api := &httpapi.Server{Store: st, River: client, TZ: cfg.TZ, Logger: logger, Gate: gate, Callers: callers,
		MemberLimit: coupongate.Limit(cfg.Callers.CouponRate)}
	riverUI, err := startRiverUI(uiCtx, client, logger, ops.Len())
	if err != nil {
		return err
	}
	batchUI := batchui.Handler(batchui.Opts{Store: st, TZ: cfg.TZ, Logger: logger, RiverUIPrefix: riverUIPrefix, Deadlines: cfg.Deadlines,
		Partner: deps.PartnerBudget})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: routes(api.Handler(), m.Handler(), riverUI, batchUI, callers),
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
	limited := httpapi.LimitListener(ln, cfg.Callers.HTTPMaxConns)
	srv.ConnState = limited.ConnState
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(limited) }()

	// Not ctx: River cancels every running job the moment its Start context
	// is done. A signal must stop the client gracefully (below) instead. An
	// API-only process only inserts: its client is never started.
	if !cfg.APIOnly {
		if err := client.Start(context.WithoutCancel(ctx)); err != nil {
			_ = srv.Close()
			return fmt.Errorf("start river: %w", err)
		}
	}
	logger.Info("worker started", "http", ln.Addr().String(), "queues", cfg.Queues, "api_only", cfg.APIOnly, "river_client", client.ID(),
		"periodic", cfg.Periodic && !cfg.APIOnly, "tz", cfg.TZ.String(),
		"postgres_session", cfg.Session.String(), "database_pooler", cfg.Pooler,
		"order_api_rate", cfg.Partner.Rate, "order_api_concurrency", cfg.Partner.Concurrency,
		"operators", ops.Names(), "members", memberAuth(cfg.Callers))

	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("http: %w", err)
	}
	logger.Info("worker stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancel()
	// The HTTP listener drains while River stops fetching and lets running
	// jobs finish: both within the one grace.
	httpDone := make(chan struct{})
	go func() { defer close(httpDone); _ = srv.Shutdown(shutdownCtx) }()
	defer func() { <-httpDone }()
	if cfg.APIOnly {
		logger.Info("worker stopped")
		return err
	}
	if stopErr := client.Stop(shutdownCtx); stopErr != nil {
		logger.Warn("running jobs did not finish in time; cancelling them so they are retried", "err", stopErr)
		hardCtx, hardCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer hardCancel()
		if err2 := client.StopAndCancel(hardCtx); err2 != nil {
			err = errors.Join(err, fmt.Errorf("stop river: %w", err2))
		}
	}
	logger.Info("worker stopped")
	return err
}

// newRedis returns a client for REDIS_URL's options, sized for the issue
// endpoint.
func newRedis(opt *redis.Options) *coupongate.Redis {
	opt.PoolSize = max(opt.PoolSize, 64)
	return coupongate.NewRedis(opt)
}
