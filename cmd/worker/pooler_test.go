package main_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testpgbouncer"
)

// Behind PgBouncer in transaction mode: worker migrate needs the direct
// MIGRATE_DATABASE_URL; a worker refuses to start where the pooler's
// sessions lack the timeouts it requires; with them, the HTTP API, enqueue,
// River UI and /metrics all work through the pooler.
func TestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bouncer := testpgbouncer.Start(t, testkit.AdminURL())
	worker, enqueue := testbin.Build(t, "worker"), testbin.Build(t, "enqueue")

	direct := testkit.EmptyDatabaseURL(t)
	pooled := []string{"DATABASE_URL=" + bouncer.URL(direct), "DATABASE_POOLER=transaction", "PERIODIC_JOBS=false"}
	code, _, stderr := testbin.Run(t, worker, pooled, "migrate")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "MIGRATE_DATABASE_URL: required with DATABASE_POOLER=transaction")
	code, _, stderr = testbin.Run(t, worker, append(pooled, "MIGRATE_DATABASE_URL="+direct), "migrate")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, `msg="migrated 0 → `)

	// A database whose sessions have no timeouts: the worker says which
	// setting and how to set it, and does not start.
	bare := testkit.DatabaseURL(t)
	code, _, stderr = testbin.Run(t, worker, []string{"DATABASE_URL=" + bouncer.URL(bare), "DATABASE_POOLER=transaction",
		"ADMIN_TOKEN=pooler-test-token", "HTTP_ADDR=127.0.0.1:0"})
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "the server's idle_in_transaction_session_timeout is 0 (no limit), DB_IDLE_TX_TIMEOUT requires 5s")
	require.Contains(t, stderr, "SET idle_in_transaction_session_timeout = '5000ms'")

	testpgbouncer.SetSession(t, direct, config.DefaultWorkerSession)
	_, partnerURL := testbin.StartThirdParty(t, direct)
	const token = "pooler-admin-token"
	w := testbin.StartWorker(t, append(pooled, "ORDER_API_URL="+partnerURL, "ADMIN_TOKEN="+token, "METRICS_TOKEN="+token)...)
	require.Contains(t, w.Output(), "database_pooler=transaction")
	base := "http://" + w.Addr

	req, err := http.NewRequest(http.MethodPost, base+"/v1/order-requests",
		strings.NewReader(`{"username": "pooled", "totalPrice": 1200, "appliedYearMonth": "2026-11"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	// enqueue through the pooler: a run with JSON arguments, and wait.
	cli := append(pooled, "BATCH_TZ=Asia/Seoul")
	code, stdout, stderr := testbin.Run(t, enqueue, cli, "therapy-daily", "--date", "2026-11-20")
	require.Equal(t, 0, code, "%s%s", stdout, stderr)
	began := time.Now()
	code, stdout, stderr = testbin.Run(t, enqueue, cli, "wait", "--timeout", "60s")
	t.Logf("enqueue wait: %s", time.Since(began))
	require.Equal(t, 0, code, "%s%s", stdout, stderr)

	pool, err := pgxpool.New(ctx, direct)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.Equal(t, int64(1), testkit.Count(t, pool, `SELECT count(*) FROM order_request WHERE username = 'pooled' AND status = 'APPLIED'`))
	require.Equal(t, int64(0), testkit.Count(t, pool, `SELECT count(*) FROM river_job WHERE state <> 'completed'`))
	require.Equal(t, int64(1), testkit.Count(t, pool, `SELECT count(*) FROM river_job
		WHERE kind = 'therapy_daily' AND state = 'completed' AND args ->> 'business_date' = '2026-11-20'`))

	resp, body := getURL(t, base+"/riverui/api/jobs?state=completed&limit=20", "Bearer "+token)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"kind":"order_submit"`)

	resp, body = getURL(t, base+"/metrics", "Bearer "+token)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), "tidemark_db_pool_max_conns 20\n")
	require.Contains(t, string(body), `tidemark_order_requests{status="APPLIED"} 1`+"\n")
	require.Contains(t, string(body), "tidemark_db_pool_empty_acquire_waits_total ")
	require.NoError(t, w.Stop(30*time.Second))
}
