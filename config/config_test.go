package config_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/config"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
	require.Equal(t, "Asia/Seoul", cfg.TZ.String())
	require.Equal(t, 24*time.Hour, cfg.Retention)
	require.Equal(t, 400*24*time.Hour, cfg.AuditRetention)
	require.Equal(t, 15*time.Second, cfg.RescueAfter)
	require.Equal(t, map[string]int{"default": 10, "therapy": 200, "outbound": 64, "member": 10}, cfg.Queues)
	require.Equal(t, 15*time.Second, cfg.CouponReconcileGrace)
	require.True(t, cfg.Periodic)
	require.Equal(t, config.LogText, cfg.LogFormat)
	require.Equal(t, slog.LevelInfo, cfg.LogLevel)
}

func TestLogFormatAndLevel(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(map[string]string{"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"}))
	require.NoError(t, err)
	require.Equal(t, config.LogJSON, cfg.LogFormat)
	require.Equal(t, slog.LevelDebug, cfg.LogLevel)
}

func TestOverridesAndQueues(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(map[string]string{
		"BATCH_TZ": "UTC", "TIDEMARK_QUEUES": " therapy=8, outbound = 2", "PERIODIC_JOBS": "false", "JOB_RETENTION": "2160h",
		"AUDIT_RETENTION": "730d",
	}))
	require.NoError(t, err)
	require.Equal(t, "UTC", cfg.TZ.String())
	require.Equal(t, map[string]int{"therapy": 8, "outbound": 2}, cfg.Queues, "exactly the queues named")
	require.False(t, cfg.APIOnly)
	require.False(t, cfg.Periodic)
	require.Equal(t, 90*24*time.Hour, cfg.Retention)
	require.Equal(t, 730*24*time.Hour, cfg.AuditRetention)
}

// TIDEMARK_QUEUES names exactly the known queues a process works; a
// process that works none says so with API_ONLY=true.
func TestQueueSets(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(map[string]string{"API_ONLY": "true"}))
	require.NoError(t, err)
	require.True(t, cfg.APIOnly)
	require.Empty(t, cfg.Queues)
	cfg, err = config.FromEnv(env(map[string]string{"API_ONLY": "false", "TIDEMARK_QUEUES": "member=3"}))
	require.NoError(t, err)
	require.Equal(t, map[string]int{"member": 3}, cfg.Queues)
	for _, tc := range []struct{ queues, apiOnly, want string }{
		{"default=10,extra=2", "", `TIDEMARK_QUEUES: unknown queue "extra"; the queues are default, member, outbound, therapy`},
		{"Default=10", "", `TIDEMARK_QUEUES: unknown queue "Default"; the queues are default, member, outbound, therapy`},
		{"default=1,default=2", "", `TIDEMARK_QUEUES: queue "default" named twice`},
		{" ", "", `TIDEMARK_QUEUES: no queue named (a process that works none is API_ONLY=true), got " "`},
		{",", "", `TIDEMARK_QUEUES: want name=workers (1..10000) separated by commas, got ""`},
		{"default", "", `TIDEMARK_QUEUES: want name=workers (1..10000) separated by commas, got "default"`},
		{"outbound=4", "true", `TIDEMARK_QUEUES: an API-only process (API_ONLY=true) works no queue; unset one of them, got "outbound=4"`},
		{"", "yes please", `API_ONLY: want true or false, got "yes please"`},
	} {
		_, err := config.FromEnv(env(map[string]string{"TIDEMARK_QUEUES": tc.queues, "API_ONLY": tc.apiOnly}))
		require.EqualError(t, err, tc.want, "TIDEMARK_QUEUES=%q API_ONLY=%q", tc.queues, tc.apiOnly)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"BATCH_TZ":               "Mars/Olympus",
		"TIDEMARK_QUEUES":        "therapy=0",
		"JOB_RETENTION":          "30m",
		"AUDIT_RETENTION":        "30d",
		"RESCUE_AFTER":           "10s",
		"PERIODIC_JOBS":          "maybe",
		"DATABASE_URL":           "mysql://x",
		"REDIS_URL":              "http://x",
		"ORDER_API_URL":          "localhost:8090",
		"DB_MAX_CONNS":           "2",
		"FETCH_COOLDOWN":         "soon",
		"COUPON_RECONCILE_GRACE": "1s",
		"LOG_FORMAT":             "logfmt",
		"LOG_LEVEL":              "loud",
	} {
		_, err := config.FromEnv(env(map[string]string{name: value}))
		require.ErrorContains(t, err, name, "%s=%q", name, value)
	}
}

func TestAuditRetentionAtLeastJobRetention(t *testing.T) {
	t.Parallel()
	_, err := config.FromEnv(env(map[string]string{"JOB_RETENTION": "1200h", "AUDIT_RETENTION": "40d"}))
	require.ErrorContains(t, err, "AUDIT_RETENTION: at least 31d and at least JOB_RETENTION")
	for _, bad := range []string{"0d", "-5d", "400days", "d", "forever"} {
		_, err := config.FromEnv(env(map[string]string{"AUDIT_RETENTION": bad}))
		require.ErrorContains(t, err, "AUDIT_RETENTION", bad)
	}
}

// A URL refused names its variable and the problem, and never its password
// or query values, whether it parses or not.
func TestBadURLsHideTheirSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, value, want string }{
		{"DATABASE_URL", "postgress://u:S3cretPW@host/db", `DATABASE_URL: want postgres://…, got scheme "postgress" in postgress://u:xxxxx@host/db`},
		{"DATABASE_URL", "postgres://u:pa%S3cretPW@host/db", `DATABASE_URL: not a valid URL (a "%" not followed by two hex digits; write a literal % as %25)`},
		{"DATABASE_URL", "postgres://u:S3cret/PW@host/db", `DATABASE_URL: not a valid URL (invalid port after host)`},
		{"DATABASE_URL", "postgres://u:1234/S3cretPW@host/db", `DATABASE_URL: an "@" after the host: escape "/", "?" and "#" in a password as %2F, %3F and %23`},
		{"DATABASE_URL", "u:S3cretPW@host/db", `DATABASE_URL: want postgres://…, got scheme "u"`},
		{"DATABASE_URL", "postgres:u:S3cretPW@host/db", `DATABASE_URL: want postgres://…, got no // after "postgres:"`},
		{"DATABASE_URL", "host=db password=S3cretPW", `DATABASE_URL: want postgres://…, got no scheme`},
		{"REDIS_URL", "redis://:pa%S3cretPW@host:6379/0", `REDIS_URL: not a valid URL (a "%" not followed by two hex digits; write a literal % as %25)`},
		{"REDIS_URL", "http://:S3cretPW@host:6379/0", `REDIS_URL: want redis://…, got scheme "http" in http://:xxxxx@host:6379/0`},
		{"ORDER_API_URL", "http:///orders?api_key=S3cretPW", `ORDER_API_URL: want http(s)://host:port, got no host in http:///orders?api_key=xxxxx`},
		{"ORDER_API_URL", "ftp://u:S3cretPW@partner/?key=S3cretPW", `ORDER_API_URL: want http(s)://host:port, got scheme "ftp" in ftp://u:xxxxx@partner/?key=xxxxx`},
	} {
		_, err := config.FromEnv(env(map[string]string{tc.name: tc.value}))
		require.EqualError(t, err, tc.want, "%s=%s", tc.name, tc.value)
		require.NotContains(t, err.Error(), "S3cret")
	}
}

func TestBatchDeadlines(t *testing.T) {
	env := func(v string) func(string) string { // this test's own, over the package's
		return func(k string) string {
			if k == "BATCH_DEADLINES" {
				return v
			}
			return ""
		}
	}
	cfg, err := config.FromEnv(env(""))
	require.NoError(t, err)
	require.Empty(t, cfg.Deadlines, "no deadline unless set")

	cfg, err = config.FromEnv(env(" settlement=06:00, therapy=03:30 "))
	require.NoError(t, err)
	require.Equal(t, config.Deadlines{"settlement": 6 * time.Hour, "therapy": 3*time.Hour + 30*time.Minute}, cfg.Deadlines)
	require.Equal(t, "therapy=03:30,settlement=06:00", cfg.Deadlines.String())
	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	due, ok := cfg.Deadlines.Due("settlement", time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC), seoul)
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 12, 7, 6, 0, 0, 0, seoul), due, "the day is the day in BATCH_TZ")

	for v, msg := range map[string]string{
		"orders=06:00":                `BATCH_DEADLINES: "orders" has no daily run; deadlines apply to therapy, settlement`,
		"settlement=6":                `BATCH_DEADLINES: settlement: want a time of day HH:MM (00:00–23:59), got "6"`,
		"settlement=24:00":            `BATCH_DEADLINES: settlement: want a time of day HH:MM (00:00–23:59), got "24:00"`,
		"settlement":                  `BATCH_DEADLINES: want batch=HH:MM, comma-separated (settlement=06:00,therapy=03:00), got "settlement"`,
		"therapy=03:00,therapy=04:00": `BATCH_DEADLINES: therapy named twice`,
	} {
		_, err := config.FromEnv(env(v))
		require.EqualError(t, err, msg, v)
	}
}

// The partner budget: unset is unlimited; bad values name the setting.
func TestPartnerBudget(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, config.Partner{KeyPrefix: "tidemark:partner"}, cfg.Partner)

	cfg, err = config.FromEnv(env(map[string]string{"ORDER_API_RATE": "90", "ORDER_API_CONCURRENCY": " 32 ", "ORDER_API_BUDGET_KEY": "eu:partner"}))
	require.NoError(t, err)
	require.Equal(t, config.Partner{Rate: 90, Concurrency: 32, KeyPrefix: "eu:partner"}, cfg.Partner)
	cfg, err = config.FromEnv(env(map[string]string{"ORDER_API_RATE": "0.5"}))
	require.NoError(t, err)
	require.Equal(t, 0.5, cfg.Partner.Rate)

	for _, tc := range []struct{ k, v, want string }{
		{"ORDER_API_RATE", "fast", `ORDER_API_RATE: want calls per second across all workers, 0 (no limit) to 100000, like 90 or 0.5, got "fast"`},
		{"ORDER_API_RATE", "-1", `ORDER_API_RATE: want calls per second`},
		{"ORDER_API_RATE", "NaN", `ORDER_API_RATE: want calls per second`},
		{"ORDER_API_RATE", "1e9", `ORDER_API_RATE: want calls per second`},
		{"ORDER_API_RATE", "0.001", `ORDER_API_RATE: at least 0.01 calls per second`},
		{"ORDER_API_CONCURRENCY", "1.5", `ORDER_API_CONCURRENCY: want calls in flight across all workers, 0 (no limit) to 100000, got "1.5"`},
		{"ORDER_API_CONCURRENCY", "-3", `ORDER_API_CONCURRENCY: want calls in flight`},
		{"ORDER_API_BUDGET_KEY", "a b", `ORDER_API_BUDGET_KEY: no spaces or control characters, got "a b"`},
		{"ORDER_API_BUDGET_KEY", " a", `ORDER_API_BUDGET_KEY: no spaces or control characters`},
	} {
		_, err := config.FromEnv(env(map[string]string{tc.k: tc.v}))
		require.ErrorContains(t, err, tc.want, "%s=%q", tc.k, tc.v)
	}
}

// DATABASE_POOLER says what stands in front of Postgres; MIGRATE_DATABASE_URL
// is the direct connection for what needs a session.
func TestPooler(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, config.PoolerNone, cfg.Pooler)
	require.Equal(t, cfg.DatabaseURL, cfg.MigrateURL(), "no MIGRATE_DATABASE_URL: DATABASE_URL")

	cfg, err = config.FromEnv(env(map[string]string{
		"DATABASE_URL": "postgres://app@pgbouncer:6432/tidemark", "DATABASE_POOLER": " Transaction ",
		"MIGRATE_DATABASE_URL": "postgres://owner@db:5432/tidemark",
	}))
	require.NoError(t, err)
	require.Equal(t, config.PoolerTransaction, cfg.Pooler)
	require.Equal(t, "postgres://owner@db:5432/tidemark", cfg.MigrateURL())

	_, err = config.FromEnv(env(map[string]string{"DATABASE_POOLER": "session"}))
	require.EqualError(t, err, `DATABASE_POOLER: want none or transaction, got "session"`)
	_, err = config.FromEnv(env(map[string]string{"MIGRATE_DATABASE_URL": "mysql://u:S3cretPW@db/x"}))
	require.EqualError(t, err, `MIGRATE_DATABASE_URL: want postgres://…, got scheme "mysql" in mysql://u:xxxxx@db/x`)
}

// A deadline is a wall-clock time on its day, even on a day whose clocks
// change; before today's deadline, the latest passed is yesterday's.
func TestDeadlineDueOnWallClock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	d, err := config.ParseDeadlines("therapy=03:00")
	require.NoError(t, err)
	// 2026-03-08: clocks go from 02:00 to 03:00 in New York.
	due, ok := d.Due("therapy", time.Date(2026, 3, 8, 12, 0, 0, 0, ny), ny)
	require.True(t, ok)
	require.Equal(t, "2026-03-08 03:00", due.In(ny).Format("2006-01-02 15:04"))
	last, ok := d.LastDue("therapy", time.Date(2026, 3, 9, 1, 0, 0, 0, ny), ny)
	require.True(t, ok)
	require.Equal(t, "2026-03-08 03:00", last.In(ny).Format("2006-01-02 15:04"), "before 03:00, yesterday's")
	last, _ = d.LastDue("therapy", time.Date(2026, 3, 9, 3, 0, 0, 0, ny), ny)
	require.Equal(t, "2026-03-09 03:00", last.In(ny).Format("2006-01-02 15:04"))
}
