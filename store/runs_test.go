package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/store"
)

// job inserts a river_job row of kind in state, created at created, with
// args and recorded output, as River would have left it.
func (b *testBundle) job(t *testing.T, kind, state string, created time.Time, args, output string) int64 {
	t.Helper()
	var id int64
	err := b.pool.QueryRow(b.ctx, `
		INSERT INTO river_job (kind, state, args, metadata, created_at, scheduled_at, attempted_at, finalized_at, max_attempts, attempt, errors)
		VALUES ($1, $2::river_job_state, $3::jsonb, jsonb_build_object('output', $4::jsonb), $5::timestamptz, $5::timestamptz, $5::timestamptz + interval '1 second',
		        CASE WHEN $2::text IN ('completed', 'discarded', 'cancelled') THEN $5::timestamptz + interval '1 minute' END, 5, 1,
		        CASE WHEN $2::text = 'discarded' THEN ARRAY['{"error": "boom"}'::jsonb] END)
		RETURNING id`, kind, state, args, output, created).Scan(&id)
	require.NoError(t, err)
	return id
}

// Every batch of a date is read from its own jobs and rows; a date with
// nothing is RunNone; the jobs of the date after, in BATCH_TZ, do not count.
func TestBatchRunsCountsEachBatchOfADate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	day := kst(2026, 11, 20, 1, 0)
	fan := b.job(t, "therapy_daily", "completed", day, `{"business_date": "2026-11-20"}`, `{"targets": 3}`)
	b.job(t, "therapy_stats", "completed", day, `{"business_date": "2026-11-20", "therapy_user_id": 1}`, `null`)
	b.job(t, "therapy_stats", "completed", day, `{"business_date": "2026-11-20", "therapy_user_id": 2}`, `null`)
	bad := b.job(t, "therapy_stats", "discarded", day, `{"business_date": "2026-11-20", "therapy_user_id": 3}`, `null`)
	b.job(t, "therapy_stats", "completed", day, `{"business_date": "2026-11-20", "therapy_user_id": 3, "trigger": "recover"}`, `null`)
	run := b.job(t, "point_settlement", "completed", day, `{"run_date": "2026-11-20", "run": 1}`, `{"read": 10, "written": 8, "skipped": 2}`)
	_, err := b.pool.Exec(b.ctx, `
		INSERT INTO point_daily_settlement (run_date, earned, used, expired, item_count, settled_at, job_id, run)
		VALUES ('2026-11-20', 1, 0, 0, 8, now(), $1, 1)`, run)
	require.NoError(t, err)
	b.job(t, "coupon_reconcile", "completed", day, `{"coupon_code": "A"}`, `{"agrees": true, "rolled_back": 0, "added_back": 0}`)
	latest := b.job(t, "coupon_reconcile", "completed", day.Add(time.Hour), `{"coupon_code": "A"}`, `{"agrees": false, "rolled_back": 2, "added_back": 1}`)
	b.job(t, "coupon_exchange", "completed", day, `{"name": "x"}`, `{"issued": 4}`)
	b.job(t, "coupon_exchange", "completed", kst(2026, 11, 21, 0, 0), `{"name": "y"}`, `{"issued": 9}`)
	for _, status := range []string{"APPLIED", "APPLIED", "FAILED", "SENDING"} {
		_, err := b.pool.Exec(b.ctx, `
			INSERT INTO order_request (username, total_price, applied_year_month, status, external_order_id, created_at)
			VALUES (md5(random()::text), 10, '2026-11', $1, CASE WHEN $1 = 'APPLIED' THEN 1 END, $2)`, status, day)
		require.NoError(t, err)
	}

	runs, err := b.store.BatchRuns(b.ctx, "2026-11-19", "2026-11-20", seoul)
	require.NoError(t, err)
	require.Len(t, runs, 10)
	got := map[string]store.BatchRun{}
	for _, r := range runs[:5] {
		require.Equal(t, "2026-11-20", r.BusinessDate)
		got[r.Kind] = r
	}
	for _, r := range runs[5:] {
		require.Equal(t, "2026-11-19", r.BusinessDate)
		require.Equal(t, store.RunNone, r.State, r.Kind)
	}
	counts := func(r store.BatchRun) map[string]int64 {
		m := map[string]int64{}
		for _, c := range r.Counts {
			m[c.Name] = c.Value
		}
		return m
	}
	th := got[store.BatchTherapy]
	require.Equal(t, map[string]int64{"targets": 3, "jobs": 3, "done": 2, "failed": 1}, counts(th))
	require.Equal(t, store.RunFailed, th.State)
	require.Equal(t, []int64{fan}, th.JobIDs)
	require.Equal(t, []int64{bad}, th.FailedJobIDs)
	require.Equal(t, "boom", th.LastError)
	require.Equal(t, time.Minute, th.Duration())

	st := got[store.BatchSettlement]
	require.Equal(t, store.RunCompleted, st.State)
	require.Equal(t, map[string]int64{"runs": 1, "read": 10, "written": 8, "skipped": 2, "items": 8}, counts(st))
	require.Equal(t, []int64{run}, st.JobIDs)

	cr := got[store.BatchCouponReconcile]
	require.Equal(t, map[string]int64{"runs": 2, "coupons": 1, "mismatched": 1, "repaired": 3}, counts(cr))
	require.Equal(t, []int64{latest}, cr.JobIDs)

	or := got[store.BatchOrders]
	require.Equal(t, store.RunRunning, or.State)
	require.Equal(t, map[string]int64{"requests": 4, "applied": 2, "failed": 1, "open": 1, "jobs": 0}, counts(or))
	require.Equal(t, int64(1), or.Failures)

	ex := got[store.BatchExchange]
	require.Equal(t, map[string]int64{"runs": 1, "issued": 4}, counts(ex))
}
