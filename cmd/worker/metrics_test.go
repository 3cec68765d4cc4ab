package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// scrape is one parsed /metrics answer.
type scrape map[string]*dto.MetricFamily

func (b *opsBundle) scrape(t *testing.T) scrape {
	t.Helper()
	resp, body := b.get(t, "/metrics", "Bearer "+b.metrics)
	require.Equal(t, http.StatusOK, resp.StatusCode, "/metrics with METRICS_TOKEN")
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	return fams
}

// value is the value of name's series with exactly labels; ok is false when
// there is none.
func (s scrape) value(name string, labels ...string) (v float64, ok bool) {
	fam := s[name]
	if fam == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && want[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func (s scrape) require(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.value(name, labels...)
	require.True(t, ok, "no series %s%v", name, labels)
	return v
}

// /metrics reports River's live jobs per queue (counts and the oldest
// available job's age) and the domain gauges exactly as SQL and Redis see
// them, with only bounded labels.
func TestMetricsMatchTheTables(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := context.Background()
	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	today := calendar.BusinessDate(time.Now(), seoul)
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, jobs.Deps{Store: store.New(b.pool), TZ: seoul,
		Logger: testkit.Logger(t)})
	require.NoError(t, err)

	// Order requests in every status; one SENDING for seven minutes.
	_, err = b.pool.Exec(ctx, `
		INSERT INTO order_request (username, total_price, applied_year_month, status, external_order_id, updated_at) VALUES
			('p1', 100, '2026-01', 'PENDING', NULL, now()), ('p2', 100, '2026-01', 'PENDING', NULL, now()),
			('s1', 100, '2026-01', 'SENDING', NULL, now() - interval '7 minutes'), ('s2', 100, '2026-01', 'SENDING', NULL, now()),
			('a1', 100, '2026-01', 'APPLIED', 42, now()), ('f1', 100, '2026-01', 'FAILED', NULL, now())`)
	require.NoError(t, err)
	// One order_submit job runs, waiting for its row's lock.
	var blockedID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO order_request (username, total_price, applied_year_month)
		VALUES ('blocked', 100, '2026-01') RETURNING id`).Scan(&blockedID))
	holder, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(ctx) //nolint:errcheck
	_, err = holder.Exec(ctx, `SELECT 1 FROM order_request WHERE id = $1 FOR UPDATE`, blockedID)
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.OrderSubmitArgs{OrderRequestID: blockedID}, nil)
	require.NoError(t, err)

	// A settled date, two days ago.
	settled := time.Now().In(seoul).AddDate(0, 0, -2).Format(time.DateOnly)
	_, err = b.pool.Exec(ctx, `INSERT INTO point_daily_settlement (run_date, earned, used, expired, item_count, settled_at, job_id, run)
		VALUES ($1, 0, 0, 0, 0, now(), 1, 1)`, settled)
	require.NoError(t, err)

	// An ACTIVE coupon with three issues, one of which its Redis gate lost:
	// its reconciliation finds and repairs one mismatch.
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	code := "M" + hex.EncodeToString(rnd)
	st := store.New(b.pool)
	cp, err := st.CreateCoupon(ctx, store.NewCoupon{Code: code, Name: "metrics", AmountType: "FIX", Amount: 1, TotalQuantity: 10,
		Status: store.CouponActive})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO coupon_issue (coupon_id, member_id) VALUES ($1, 1), ($1, 2), ($1, 3)`, cp.ID)
	require.NoError(t, err)
	rdb := testredis.Client(t)
	gate := coupongate.New(rdb, "")
	t.Cleanup(func() { rdb.Del(context.Background(), gate.StockKey(code), gate.IssuedKey(code)) })
	_, err = gate.Load(ctx, code, 10, []int64{1, 2})
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.CouponReconcileArgs{CouponCode: code}, nil)
	require.NoError(t, err)

	// Today's therapy run, over three users.
	_, err = b.pool.Exec(ctx, `INSERT INTO therapy_user (id, status) SELECT u, 'ACTIVE' FROM generate_series(1, 3) u`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		SELECT u, (($1::date - 1) + time '12:00') AT TIME ZONE 'Asia/Seoul', 60, true FROM generate_series(1, 3) u`, today)
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.TherapyDailyArgs{BusinessDate: today}, nil)
	require.NoError(t, err)

	// Wait until everything but the parked jobs and the blocked one is done.
	require.Eventually(t, func() bool {
		var unfinished, running int
		require.NoError(t, b.pool.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE queue <> $1 AND state NOT IN ('completed', 'running')),
			       count(*) FILTER (WHERE state = 'running')
			FROM river_job`, parkedQueue).Scan(&unfinished, &running))
		return unfinished == 0 && running == 1
	}, 30*time.Second, 50*time.Millisecond, "the jobs finish; order_submit waits for its row")

	m := b.scrape(t)

	// The process's own pool: the order_submit waiting for its row holds a
	// connection; the pool is DB_MAX_CONNS (20) at most.
	require.Equal(t, 20.0, m.require(t, "tidemark_db_pool_max_conns"))
	acquired, idle := m.require(t, "tidemark_db_pool_acquired_conns"), m.require(t, "tidemark_db_pool_idle_conns")
	require.GreaterOrEqual(t, acquired, 1.0)
	require.GreaterOrEqual(t, m.require(t, "tidemark_db_pool_total_conns"), acquired+idle)
	require.Greater(t, m.require(t, "tidemark_db_pool_acquires_total"), 0.0)
	m.require(t, "tidemark_db_pool_empty_acquire_waits_total")
	m.require(t, "tidemark_db_pool_empty_acquire_wait_seconds_total")

	// River's live jobs, per queue, equal to SQL over river_job.
	rows, err := b.pool.Query(ctx, `
		SELECT q.queue, s.state, count(j.id),
		       coalesce(extract(epoch FROM now() - min(j.scheduled_at) FILTER (WHERE j.state = 'available')), 0)::float8
		FROM (SELECT DISTINCT queue FROM river_job UNION SELECT unnest(ARRAY['default', 'therapy', 'outbound', 'member'])) q
		CROSS JOIN unnest(ARRAY['available', 'running', 'retryable', 'scheduled']) s(state)
		LEFT JOIN river_job j ON j.queue = q.queue AND j.state::text = s.state
		GROUP BY q.queue, s.state`)
	require.NoError(t, err)
	checked := map[string]bool{}
	for rows.Next() {
		var (
			queue, state string
			n            int64
			age          float64
		)
		require.NoError(t, rows.Scan(&queue, &state, &n, &age))
		require.Equal(t, float64(n), m.require(t, "tidemark_queue_jobs", "queue", queue, "state", state), "%s %s", queue, state)
		if state == "available" {
			require.InDelta(t, age, m.require(t, "tidemark_queue_oldest_available_age_seconds", "queue", queue), 3, queue)
		}
		checked[queue+" "+state] = n > 0
	}
	require.NoError(t, rows.Err())
	require.True(t, checked["parked available"])
	require.True(t, checked["outbound running"])
	require.InDelta(t, time.Since(b.parkedAt).Seconds(), m.require(t, "tidemark_queue_oldest_available_age_seconds", "queue", parkedQueue), 3)
	require.Equal(t, 2.0, m.require(t, "tidemark_jobs", "queue", parkedQueue, "kind", "therapy_stats", "state", "available"))
	require.Equal(t, 1.0, m.require(t, "tidemark_jobs", "queue", "outbound", "kind", "order_submit", "state", "running"))

	// Order requests by status, equal to order_request.
	rows, err = b.pool.Query(ctx, `SELECT s, count(o.id) FROM unnest(ARRAY['PENDING', 'SENDING', 'APPLIED', 'FAILED']) s
		LEFT JOIN order_request o ON o.status = s GROUP BY s`)
	require.NoError(t, err)
	for rows.Next() {
		var (
			status string
			n      int64
		)
		require.NoError(t, rows.Scan(&status, &n))
		require.Equal(t, float64(n), m.require(t, "tidemark_order_requests", "status", status), status)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 3.0, m.require(t, "tidemark_order_requests", "status", "PENDING"), "two, and the blocked one")
	require.InDelta(t, 420, m.require(t, "tidemark_order_oldest_sending_age_seconds"), 3)

	// The coupon: Postgres' issues, and Redis' gate as it is after the repair.
	var issues int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, cp.ID).Scan(&issues))
	require.Equal(t, float64(issues), m.require(t, "tidemark_coupon_issues", "coupon", code))
	require.Equal(t, 10.0, m.require(t, "tidemark_coupon_total_quantity", "coupon", code))
	gs, err := gate.State(ctx, code)
	require.NoError(t, err)
	require.Equal(t, 1.0, m.require(t, "tidemark_coupon_gate_loaded", "coupon", code))
	require.Equal(t, float64(gs.Stock), m.require(t, "tidemark_coupon_gate_stock", "coupon", code))
	require.Equal(t, float64(len(gs.Members)), m.require(t, "tidemark_coupon_gate_issued", "coupon", code))
	require.Equal(t, 7.0, float64(gs.Stock))
	require.Equal(t, 1.0, m.require(t, "tidemark_reconcile_mismatches_found", "check", "coupon"))
	require.Equal(t, 1.0, m.require(t, "tidemark_reconcile_mismatches_repaired", "check", "coupon"))
	var finalized time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT finalized_at FROM river_job WHERE kind = 'coupon_reconcile' AND state = 'completed'`).Scan(&finalized))
	require.Equal(t, float64(finalized.Unix()), m.require(t, "tidemark_reconcile_last_run_timestamp_seconds", "check", "coupon"))

	// The last settled date and today's therapy run.
	midnight, err := time.ParseInLocation(time.DateOnly, settled, seoul)
	require.NoError(t, err)
	require.Equal(t, float64(midnight.Unix()), m.require(t, "tidemark_settlement_last_date_timestamp_seconds"))
	require.Equal(t, 3.0, m.require(t, "tidemark_therapy_run_targets"))
	require.Equal(t, 3.0, m.require(t, "tidemark_therapy_run_done"))
	require.Equal(t, 0.0, m.require(t, "tidemark_therapy_run_failed"))

	// Today's therapy run completed; yesterday's settlement never ran.
	require.Equal(t, 0.0, m.require(t, "tidemark_batch_late", "batch", "therapy"))
	require.Equal(t, 1.0, m.require(t, "tidemark_batch_late", "batch", "settlement"))
	todayMidnight, err := time.ParseInLocation(time.DateOnly, today, seoul)
	require.NoError(t, err)
	require.Equal(t, float64(todayMidnight.Unix()), m.require(t, "tidemark_batch_deadline_timestamp_seconds", "batch", "therapy"))

	// What this worker did: counted from River's events and inserts.
	require.Equal(t, 3.0, m.require(t, "tidemark_jobs_worked_total", "kind", "therapy_stats", "outcome", "completed"))
	require.Equal(t, 3.0, m.require(t, "tidemark_job_run_duration_seconds", "kind", "therapy_stats"))
	require.Equal(t, 1.0, m.require(t, "tidemark_jobs_worked_total", "kind", "coupon_reconcile", "outcome", "completed"))
	require.Equal(t, 3.0, m.require(t, "tidemark_jobs_inserted_total", "kind", "therapy_stats"), "the fan-out's inserts")
	for _, src := range []string{"river_job", "order_request", "coupon", "redis", "settlement", "therapy", "reconcile", "deadlines"} {
		require.Equal(t, 1.0, m.require(t, "tidemark_metrics_source_up", "source", src), src)
	}

	// The budget toward the partner: nothing waited, the breaker closed.
	require.Equal(t, 0.0, m.require(t, "tidemark_partner_budget_snoozes_total", "reason", "breaker"))
	require.Equal(t, 1.0, m.require(t, "tidemark_partner_breaker_state", "state", "closed"))

	// Numbers only: tidemark's labels are from a closed set.
	allowed := map[string]bool{"queue": true, "kind": true, "state": true, "status": true, "coupon": true,
		"check": true, "outcome": true, "source": true, "batch": true, "reason": true,
		"version": true, "revision": true, "goversion": true} // tidemark_build_info's: one series a binary
	for name, fam := range m {
		if !strings.HasPrefix(name, "tidemark_") {
			continue
		}
		for _, s := range fam.GetMetric() {
			for _, l := range s.GetLabel() {
				require.True(t, allowed[l.GetName()], "%s has label %s=%s", name, l.GetName(), l.GetValue())
			}
		}
	}
}

// A worker that has worked nothing yet reports every kind's counters and
// live-job gauges, and every reconciliation check, at zero: an alert on the
// first discarded job, or rate() over a counter, sees the series from the
// start.
func TestMetricsExistAtZero(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	m := b.scrape(t)
	for kind, queue := range jobs.KindQueues() {
		for _, outcome := range []string{"completed", "retried", "discarded", "cancelled", "snoozed"} {
			require.Zero(t, m.require(t, "tidemark_jobs_worked_total", "kind", kind, "outcome", outcome), kind)
		}
		require.Zero(t, m.require(t, "tidemark_jobs_inserted_total", "kind", kind))
		require.Zero(t, m.require(t, "tidemark_jobs_stale_attempts_total", "kind", kind))
		if queue != parkedQueue {
			require.Zero(t, m.require(t, "tidemark_jobs", "queue", queue, "kind", kind, "state", "retryable"), kind)
		}
	}
	for _, check := range []string{"coupon", "orders", "therapy"} {
		require.Zero(t, m.require(t, "tidemark_reconcile_mismatches_found", "check", check))
		require.Zero(t, m.require(t, "tidemark_reconcile_last_run_timestamp_seconds", "check", check))
	}
	// Past midnight's deadlines, with no run at all: both late.
	require.Equal(t, 1.0, m.require(t, "tidemark_batch_late", "batch", "therapy"))
	require.Equal(t, 1.0, m.require(t, "tidemark_batch_late", "batch", "settlement"))
}

// Every outcome is logged with the job's kind and attempt, a cancelled job
// too, and River's own lines name the kind as tidemark's do.
func TestJobOutcomesAreLogged(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := context.Background()
	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, jobs.Deps{Store: store.New(b.pool), TZ: seoul, Logger: testkit.Logger(t)})
	require.NoError(t, err)
	// An order job whose row does not exist is cancelled on its first attempt.
	res, err := client.Insert(ctx, jobs.OrderSubmitArgs{OrderRequestID: 987654321}, nil)
	require.NoError(t, err)
	line := fmt.Sprintf(`level=WARN msg="job cancelled" kind=order_submit job_id=%d attempt=1 queue=outbound outcome=cancelled`, res.Job.ID)
	testkit.WaitFor(t, 30*time.Second, "the cancelled job's log line", func() (bool, error) {
		return strings.Contains(b.worker.Output(), line), nil
	})
	require.Contains(t, b.worker.Output(), "does not exist")
	require.NotContains(t, b.worker.Output(), "job_kind=", "River's lines say kind=")
}

// The jobs the enqueue CLI inserts are counted too: a CLI process has no
// /metrics, so every worker's reports them from Postgres.
func TestEnqueueInsertsAreCounted(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	_, err := b.pool.Exec(context.Background(), `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE')`)
	require.NoError(t, err)
	enqueue := testbin.Build(t, "enqueue")
	code, stdout, stderr := testbin.Run(t, enqueue, b.env, "therapy-stats", "--month", "2026-11", "--user", "1,2,2")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "inserted 2, skipped 0")
	m := b.scrape(t)
	require.Equal(t, 2.0, m.require(t, "tidemark_enqueue_jobs_inserted_total", "kind", "therapy_stats"))
	require.Zero(t, m.require(t, "tidemark_enqueue_jobs_inserted_total", "kind", "point_settlement"))
}
