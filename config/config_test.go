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
		"BATCH_TZ": "UTC", "TIDEMARK_QUEUES": "therapy=8,extra=2", "PERIODIC_JOBS": "false", "JOB_RETENTION": "2160h",
		"AUDIT_RETENTION": "730d",
	}))
	require.NoError(t, err)
	require.Equal(t, "UTC", cfg.TZ.String())
	require.Equal(t, 8, cfg.Queues["therapy"])
	require.Equal(t, 2, cfg.Queues["extra"])
	require.Equal(t, 10, cfg.Queues["default"], "queues not named keep their defaults")
	require.False(t, cfg.Periodic)
	require.Equal(t, 90*24*time.Hour, cfg.Retention)
	require.Equal(t, 730*24*time.Hour, cfg.AuditRetention)
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
