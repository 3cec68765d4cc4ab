package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/backfill"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/dbpool"
	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/joblog"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/redact"
	"github.com/tidemark/tidemark/store"
	"github.com/tidemark/tidemark/version"
)

// command is one enqueue subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is every subcommand, the table `enqueue --help` prints.
var commands = map[string]command{
	"therapy-stats":     {"enqueue therapy_stats jobs for one month (backfill)", cmdTherapyStats},
	"therapy-daily":     {"run the daily therapy fan-out for a business date now", cmdTherapyDaily},
	"therapy-report":    {"print a month's therapy statistics summary", cmdTherapyReport},
	"demo-data":         {"load demo therapy users and performs", cmdDemoData},
	"orders":            {"insert order requests from a CSV file, each with its order_submit job", cmdOrders},
	"order-status":      {"count order requests by status", cmdOrderStatus},
	"retry":             {"re-queue the failed (or completed) jobs a filter matches", cmdRetry},
	"status":            {"count jobs by kind and state", cmdStatus},
	"wait":              {"block until no job is available, running, pending or due within 1s", cmdWait},
	"settlement":        {"start the point settlement run for a business date (--rerun to run it again)", cmdSettlement},
	"demo-ledger":       {"load demo point_ledger rows due on a business date", cmdDemoLedger},
	"reprocess":         {"have processed ledger rows collected again on a date", cmdReprocess},
	"defer":             {"postpone unprocessed ledger rows to a future date", cmdDefer},
	"ready":             {"mark ledger rows ready (their preceding step finished)", cmdReady},
	"coupon create":     {"create a coupon and load its Redis stock", cmdCouponCreate},
	"coupon load-redis": {"rebuild a coupon's Redis stock from Postgres", cmdCouponLoadRedis},
	"coupon expire":     {"end a coupon now, so its unused issues can be exchanged", cmdCouponExpire},
	"coupon-exchange":   {"exchange an expired coupon's unused issues for a new coupon (the exchange job)", cmdCouponExchange},
	"cancel":            {"cancel the waiting (or running) jobs a filter matches", cmdCancel},
	"reconcile":         {"run one reconciliation check now and print its report", cmdReconcile},
	"member-token":      {"print HS256 member tokens signed with MEMBER_JWT_SECRET (local runs and tests)", cmdMemberToken},
	"backfill":          {"run a batch for each date (month) of a range that has not completed, oldest first", cmdBackfill},
	"runs":              {"print each batch's run per business date: state, counts, duration, failures", cmdRuns},
}

// lookup finds the command args name, one word or, for a command with
// subcommands, two ("coupon create"), and returns its flags. An unknown or
// missing subcommand is a usage error; `coupon --help` lists the
// subcommands on out (cliflag.ErrHelp).
func lookup(args []string, out io.Writer) (string, command, []string, error) {
	if cmd, ok := commands[args[0]]; ok {
		return args[0], cmd, args[1:], nil
	}
	var subs []string
	for n := range commands {
		if sub, ok := strings.CutPrefix(n, args[0]+" "); ok {
			subs = append(subs, sub)
		}
	}
	if len(subs) == 0 {
		return "", command{}, nil, cliflag.Usagef("unknown command %s; run enqueue --help for the list", redact.Text(strconv.Quote(args[0])))
	}
	sort.Strings(subs)
	want := strings.Join(subs, ", ")
	switch {
	case len(args) == 1:
		return args[0], command{}, nil, cliflag.Usagef("want a subcommand: %s", want)
	case args[1] == "-h" || args[1] == "--help" || args[1] == "help":
		for _, s := range subs {
			fmt.Fprintf(out, "  enqueue %s %-12s %s\n", args[0], s, commands[args[0]+" "+s].summary)
		}
		return args[0], command{}, nil, cliflag.ErrHelp
	}
	name := args[0] + " " + args[1]
	if cmd, ok := commands[name]; ok {
		return name, cmd, args[2:], nil
	}
	return args[0], command{}, nil, cliflag.Usagef("unknown subcommand %s: want %s", redact.Text(strconv.Quote(args[1])), want)
}

// env is what a command runs with; the database is opened on first use.
type env struct {
	cfg config.Config
	// pgConfig and redisOpt are DATABASE_URL and REDIS_URL as pgx and
	// go-redis parsed them.
	pgConfig *pgxpool.Config
	redisOpt *redis.Options
	stdout   io.Writer
	stderr   io.Writer
	logger   *slog.Logger
	// operator is who runs the command ($USER), recorded with bulk actions.
	operator string

	pool   *pgxpool.Pool
	store  *store.Store
	client *jobs.Client
}

func (e *env) open(ctx context.Context) error {
	if e.pool != nil {
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, e.pgConfig)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: connect: %w", err)
	}
	e.pool, e.store = pool, store.New(pool)
	if err := e.store.Ping(ctx); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	// Its inserts are counted in Postgres, where every worker's /metrics
	// reads them.
	e.client, err = jobs.NewClient(pool, jobs.ClientConfig{Retention: e.cfg.Retention, RescueAfter: e.cfg.RescueAfter,
		PollOnly: e.cfg.Pooler == config.PoolerTransaction, Middleware: []rivertype.Middleware{jobs.EnqueueInsertMiddleware(e.store, e.logger)}},
		jobs.Deps{Store: e.store, TZ: e.cfg.TZ, Logger: e.logger})
	return err
}

// backfillEnv is what package backfill runs with, once open.
func (e *env) backfillEnv() backfill.Env {
	return backfill.Env{Client: e.client, Store: e.store, TZ: e.cfg.TZ, Logger: e.logger}
}

// Main runs enqueue with args and returns its exit code.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		printUsage(stdout)
		return 0
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, "enqueue", version.Read())
		return 0
	}
	// Errors go to stderr as text, or under LOG_FORMAT=json as one JSON
	// object a line, as the worker's; the exit status says which kind.
	jsonLines := strings.TrimSpace(getenv("LOG_FORMAT")) == config.LogJSON
	fail := func(code int, command, msg string) int {
		if jsonLines {
			joblog.NewLogger(stderr, true, slog.LevelError).Error(msg, "command", command, "exit", code)
		} else if command == "" {
			fmt.Fprintf(stderr, "enqueue: %s\n", msg)
		} else {
			fmt.Fprintf(stderr, "enqueue %s: %s\n", command, msg)
		}
		return code
	}
	name, cmd, args, err := lookup(args, stdout)
	switch {
	case errors.Is(err, cliflag.ErrHelp):
		return 0
	case err != nil:
		return fail(2, name, oneLine(err))
	}
	cfg, err := config.FromEnv(getenv)
	var pc *pgxpool.Config
	var redisOpt *redis.Options
	if err == nil {
		pc, redisOpt, err = parseURLs(cfg)
	}
	if err != nil {
		return fail(2, "", "configuration: "+oneLine(err))
	}
	// Warnings and errors only: a command's own output is its report.
	e := &env{cfg: cfg, pgConfig: pc, redisOpt: redisOpt, stdout: stdout, stderr: stderr, operator: operatorName(getenv),
		logger: joblog.NewLogger(stderr, cfg.LogFormat == config.LogJSON, max(cfg.LogLevel, slog.LevelWarn))}
	defer func() {
		if e.pool != nil {
			e.pool.Close()
		}
	}()
	err = cmd.run(ctx, e, args)
	var ue *cliflag.UsageError
	switch {
	case err == nil, errors.Is(err, cliflag.ErrHelp):
		return 0
	case errors.Is(err, jobs.ErrAlreadyRan):
		var done *jobs.RunCompletedError
		if errors.As(err, &done) {
			done.FinalizedAt = done.FinalizedAt.In(cfg.TZ) // times are shown in BATCH_TZ
		}
		return fail(exitAlreadyRan, name, oneLine(err))
	case errors.As(err, &ue):
		return fail(2, name, oneLine(err))
	default:
		return fail(1, name, oneLine(err))
	}
}

// exitAlreadyRan is the exit status of every command that refuses to start
// a run that exists (queued, running or completed), so a script tells
// "nothing to do" from a failure the same way for each.
const exitAlreadyRan = 3

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: enqueue <command> [flags]   (enqueue <command> --help for its flags; enqueue --version)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nexit status: 0 success, 1 runtime error, 2 usage error, 3 already ran (the run exists, queued, running or\ncompleted: nothing enqueued; --rerun runs a completed one again)")
}

// newFlagSet returns a flag set for command name whose help goes to
// e.stdout (its errors are returned, and printed on stderr by Main).
func (e *env) newFlagSet(name string) *flag.FlagSet { return cliflag.NewFlagSet(name, e.stdout) }

// parseFlags parses a command's flags (cliflag.Parse).
func parseFlags(fs *flag.FlagSet, args []string) error { return cliflag.Parse("enqueue", fs, args) }

// oneLine is err's message on one line, every URL and password in it
// redacted: the last defence for whatever a library quoted.
func oneLine(err error) string { return redact.Line(err.Error()) }

// parseURLs parses DATABASE_URL and REDIS_URL as pgx and go-redis will use
// them, so that a value they refuse is a configuration error (exit 2) before
// any command runs.
func parseURLs(cfg config.Config) (*pgxpool.Config, *redis.Options, error) {
	// An operator's command runs long statements, but bounds its lock
	// waits and idle transactions like the workers (config.EnqueueSession).
	// Through a transaction pooler the sessions are the role's: run enqueue
	// as a role whose settings fit it (docs/design/pooler.md).
	pc, err := dbpool.Config(cfg.DatabaseURL, cfg.Pooler, config.EnqueueSession)
	if err != nil {
		return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return pc, opt, nil
}
