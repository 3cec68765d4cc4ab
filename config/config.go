// Package config is tidemark's runtime configuration: a typed struct built from
// environment variables by the commands in cmd/, validated once, and passed down
// as plain values. No other package reads the environment.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/redact"
)

// Config is everything a tidemark process can be told from outside.
type Config struct {
	DatabaseURL string // DATABASE_URL
	// Pooler is what stands between this process and Postgres
	// (DATABASE_POOLER): PoolerNone, a direct connection, or
	// PoolerTransaction, a pooler such as PgBouncer in transaction mode,
	// which keeps no session state between transactions.
	Pooler string
	// MigrateDatabaseURL is a direct connection to the same database
	// (MIGRATE_DATABASE_URL), for what needs a session of its own: worker
	// migrate (golang-migrate holds a session advisory lock). Empty:
	// DatabaseURL.
	MigrateDatabaseURL string
	RedisURL           string         // REDIS_URL
	OrderAPIURL        string         // ORDER_API_URL
	HTTPAddr           string         // HTTP_ADDR
	TZ                 *time.Location // BATCH_TZ

	// Callers is who may call the worker's HTTP listener and how hard.
	Callers Callers

	// Queues maps each River queue this process works to its worker count
	// (TIDEMARK_QUEUES, "default=10,therapy=20"): exactly those queues. Empty
	// only in an API-only process (APIOnly).
	Queues map[string]int
	// APIOnly is a process that serves the HTTP API and works no queue
	// (API_ONLY=true).
	APIOnly bool
	// Retention is how long completed, cancelled and discarded jobs stay in
	// river_job before River's cleaner moves them to the audit archive
	// (JOB_RETENTION, a Go duration).
	Retention time.Duration
	// AuditRetention is how long the archive keeps a finished job
	// (AUDIT_RETENTION: a Go duration or a number of days, "400d"). Whole
	// months are dropped once they ended this long ago.
	AuditRetention time.Duration
	// RescueAfter is the least time a job stays running before River's
	// rescuer may take its worker for dead and hand it back (RESCUE_AFTER);
	// each kind is rescued only once it has also run longer than its own
	// timeout.
	RescueAfter time.Duration
	// Periodic enables this process's periodic jobs (PERIODIC_JOBS=false to
	// disable); River runs them only on the elected leader.
	Periodic bool
	// OrderCallTimeout bounds one outbound order call (ORDER_CALL_TIMEOUT).
	OrderCallTimeout time.Duration
	// FetchCooldown is the least time between two fetches of one queue
	// (FETCH_COOLDOWN). A queue works at most workers ÷ cooldown jobs per
	// second, so River's 100 ms default caps 50 workers at 500 jobs/s.
	FetchCooldown time.Duration
	// Deadlines are the times of day by which the daily batches' runs must
	// have completed (BATCH_DEADLINES); a late run shows on /ui/ and in
	// /metrics.
	Deadlines Deadlines
	// DBMaxConns is the size of this process's Postgres pool (DB_MAX_CONNS).
	DBMaxConns int
	// Session is what Postgres enforces on the worker's sessions
	// (DB_IDLE_TX_TIMEOUT, DB_LOCK_TIMEOUT, DB_STATEMENT_TIMEOUT).
	Session Session
	// ShutdownGrace is how long a stopping worker lets running jobs finish
	// before it cancels them, handing them back to be retried elsewhere
	// (SHUTDOWN_GRACE).
	ShutdownGrace time.Duration
	// CouponReconcileGrace is how long the coupon reconciliation waits
	// before it re-checks a member found only in Redis
	// (COUPON_RECONCILE_GRACE): longer than an issue request can take
	// between its Redis step and its persist job's commit.
	CouponReconcileGrace time.Duration
	// LogFormat is how log lines are written (LOG_FORMAT): LogText
	// (key=value) or LogJSON (one JSON object a line).
	LogFormat string
	// LogLevel is the least level logged (LOG_LEVEL).
	LogLevel slog.Level
	// Partner is the call budget toward the order partner shared by every
	// worker process (ORDER_API_RATE, ORDER_API_CONCURRENCY,
	// ORDER_API_BUDGET_KEY).
	Partner Partner
}

// Log formats of LOG_FORMAT.
const (
	LogText = "text"
	LogJSON = "json"
)

// Poolers of DATABASE_POOLER.
const (
	// PoolerNone is a direct connection to Postgres: every session is the
	// worker's own.
	PoolerNone = "none"
	// PoolerTransaction is a pooler that lends a server connection for one
	// transaction at a time (PgBouncer's pool_mode = transaction).
	PoolerTransaction = "transaction"
)

// Defaults for values not given.
const (
	DefaultHTTPAddr = "127.0.0.1:8080"
	DefaultTZ       = "Asia/Seoul"
	DefaultDatabase = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedis    = "redis://127.0.0.1:6379/0"
	DefaultOrderAPI = "http://127.0.0.1:8090"
)

// DefaultQueues is the queue layout when TIDEMARK_QUEUES is not set.
func DefaultQueues() map[string]int {
	return map[string]int{jobs.QueueDefault: 10, jobs.QueueTherapy: 200, jobs.QueueOutbound: 64, jobs.QueueMember: 10}
}

// FromEnv builds a Config from getenv (os.Getenv in cmd/), applying defaults,
// and validates it.
func FromEnv(getenv func(string) string) (Config, error) {
	or := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	var errs []error
	cfg := Config{
		DatabaseURL: or("DATABASE_URL", DefaultDatabase),
		Pooler:      strings.ToLower(or("DATABASE_POOLER", PoolerNone)),

		MigrateDatabaseURL: strings.TrimSpace(getenv("MIGRATE_DATABASE_URL")),
		RedisURL:           or("REDIS_URL", DefaultRedis),
		OrderAPIURL:        or("ORDER_API_URL", DefaultOrderAPI),
		HTTPAddr:           or("HTTP_ADDR", DefaultHTTPAddr),
		Queues:             DefaultQueues(),
		Periodic:           true,
		LogFormat:          strings.ToLower(or("LOG_FORMAT", LogText)),
	}
	if v := strings.TrimSpace(getenv("LOG_LEVEL")); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", v))
		}
	}
	tz, err := time.LoadLocation(or("BATCH_TZ", DefaultTZ))
	if err != nil {
		errs = append(errs, fmt.Errorf("BATCH_TZ: %w", err))
	}
	cfg.TZ = tz
	if err := cfg.queuesFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	dur := func(k string, def time.Duration) time.Duration {
		v := getenv(k)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive Go duration like 90s, got %q", k, v))
			return def
		}
		return d
	}
	cfg.Retention = dur("JOB_RETENTION", 24*time.Hour)
	cfg.AuditRetention = DefaultAuditRetention
	if v := getenv("AUDIT_RETENTION"); v != "" {
		d, err := ParseDays(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("AUDIT_RETENTION: %w", err))
		} else {
			cfg.AuditRetention = d
		}
	}
	cfg.RescueAfter = dur("RESCUE_AFTER", 15*time.Second)
	cfg.OrderCallTimeout = dur("ORDER_CALL_TIMEOUT", 10*time.Second)
	cfg.FetchCooldown = dur("FETCH_COOLDOWN", 5*time.Millisecond)
	cfg.ShutdownGrace = dur("SHUTDOWN_GRACE", 5*time.Second)
	cfg.CouponReconcileGrace = dur("COUPON_RECONCILE_GRACE", 15*time.Second)
	cfg.Session = sessionFromEnv(dur)
	cfg.DBMaxConns = 20
	if v := getenv("DB_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 || n > 1000 {
			errs = append(errs, fmt.Errorf("DB_MAX_CONNS: want 4..1000, got %q", v))
		} else {
			cfg.DBMaxConns = n
		}
	}
	if v := getenv("PERIODIC_JOBS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PERIODIC_JOBS: want true or false, got %q", v))
		}
		cfg.Periodic = b
	}
	if cfg.Partner, err = partnerFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	callers, err := callersFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Callers = callers
	if cfg.Deadlines, err = ParseDeadlines(getenv("BATCH_DEADLINES")); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate reports the first thing wrong with cfg. An error about a URL
// names the variable and the problem, never the URL's secrets: a URL that
// parses is shown redacted, one that does not is not shown.
func (c Config) Validate() error {
	if err := checkURL("DATABASE_URL", c.DatabaseURL, "postgres://…", false, "postgres", "postgresql"); err != nil {
		return err
	}
	if c.Pooler != PoolerNone && c.Pooler != PoolerTransaction {
		return fmt.Errorf("DATABASE_POOLER: want %s or %s, got %q", PoolerNone, PoolerTransaction, c.Pooler)
	}
	if c.MigrateDatabaseURL != "" {
		if err := checkURL("MIGRATE_DATABASE_URL", c.MigrateDatabaseURL, "postgres://…", false, "postgres", "postgresql"); err != nil {
			return err
		}
	}
	if err := checkURL("REDIS_URL", c.RedisURL, "redis://…", false, "redis", "rediss"); err != nil {
		return err
	}
	if err := checkURL("ORDER_API_URL", c.OrderAPIURL, "http(s)://host:port", true, "http", "https"); err != nil {
		return err
	}
	if c.TZ == nil {
		return errors.New("BATCH_TZ: no time zone")
	}
	if c.LogFormat != LogText && c.LogFormat != LogJSON {
		return fmt.Errorf("LOG_FORMAT: want text or json, got %q", c.LogFormat)
	}
	// The hourly reconciliations are unique per period through their jobs
	// in river_job: a shorter retention would let a period run twice.
	if c.Retention < time.Hour {
		return fmt.Errorf("JOB_RETENTION: at least 1h (the longest period a periodic job is unique for), got %s", c.Retention)
	}
	if c.AuditRetention < MinAuditRetention || c.AuditRetention < c.Retention {
		return fmt.Errorf("AUDIT_RETENTION: at least %dd and at least JOB_RETENTION, got %s", int(MinAuditRetention.Hours()/24), c.AuditRetention)
	}
	if c.FetchCooldown < time.Millisecond {
		return fmt.Errorf("FETCH_COOLDOWN: at least 1ms, got %s", c.FetchCooldown)
	}
	if c.RescueAfter <= 10*time.Second { // River: longer than the client's default job timeout
		return fmt.Errorf("RESCUE_AFTER: more than 10s (the default job timeout), got %s", c.RescueAfter)
	}
	if err := c.validateSession(); err != nil {
		return err
	}
	if c.ShutdownGrace > 60*time.Second {
		return fmt.Errorf("SHUTDOWN_GRACE: at most 60s (a stopping worker cancels and hands back what is still running), got %s", c.ShutdownGrace)
	}
	// An issue request takes up to 5s (the persist job's insert timeout)
	// between its Redis step and its commit; a shorter grace would roll
	// back seats still being issued. Longer than the 5 min period, runs
	// would overlap.
	if c.CouponReconcileGrace < 10*time.Second || c.CouponReconcileGrace > 4*time.Minute {
		return fmt.Errorf("COUPON_RECONCILE_GRACE: 10s..4m (longer than an issue request, shorter than the 5 min reconciliation period), got %s", c.CouponReconcileGrace)
	}
	if c.OrderCallTimeout > 20*time.Second { // order_submit makes two calls within its 50s timeout
		return fmt.Errorf("ORDER_CALL_TIMEOUT: at most 20s (an order_submit attempt makes up to two calls within 50s), got %s", c.OrderCallTimeout)
	}
	return nil
}

// MigrateURL is the URL for what needs a session of its own (worker
// migrate): MIGRATE_DATABASE_URL when set, else DATABASE_URL.
func (c Config) MigrateURL() string {
	if c.MigrateDatabaseURL != "" {
		return c.MigrateDatabaseURL
	}
	return c.DatabaseURL
}

// checkURL refuses raw, the value of variable name, unless it is a
// scheme://… URL with one of schemes (and a host, with needHost).
func checkURL(name, raw, want string, needHost bool, schemes ...string) error {
	u, err := redact.ParseURL(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	case u.Scheme == "":
		return fmt.Errorf("%s: want %s, got no scheme", name, want)
	case !slices.Contains(schemes, u.Scheme):
		if shown := redact.URL(raw); shown != redact.Unparseable {
			return fmt.Errorf("%s: want %s, got scheme %q in %s", name, want, u.Scheme, shown)
		}
		return fmt.Errorf("%s: want %s, got scheme %q", name, want, u.Scheme)
	case u.Opaque != "":
		return fmt.Errorf("%s: want %s, got no // after %q", name, want, u.Scheme+":")
	case redact.URL(raw) == redact.Unparseable:
		return fmt.Errorf(`%s: an "@" after the host: escape "/", "?" and "#" in a password as %%2F, %%3F and %%23`, name)
	case needHost && u.Host == "":
		return fmt.Errorf("%s: want %s, got no host in %s", name, want, redact.URL(raw))
	}
	return nil
}

// DefaultAuditRetention is AUDIT_RETENTION's default: 400 days, the jobs'
// own.
const DefaultAuditRetention = jobs.DefaultAuditRetention

// MinAuditRetention is the least AUDIT_RETENTION: the archive drops whole
// months, so a shorter one would keep less than the month it is in.
const MinAuditRetention = 31 * 24 * time.Hour

// ParseDays parses a positive Go duration ("9600h") or a whole number of
// days ("400d").
func ParseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > 100*366 {
			return 0, fmt.Errorf("want a number of days like 400d or a Go duration, got %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a number of days like 400d or a Go duration, got %q", s)
	}
	return d, nil
}
