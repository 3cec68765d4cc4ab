package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// SQL outside River reads the JSON keys of job args: store's queries, the
// audit views of the migrations, the ledger's index. Each kind's job is
// inserted the way tidemark inserts it and read back through that SQL, so a
// renamed field fails here rather than in an empty audit.
func TestSQLReadsJobArgKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	deps := jobs.Deps{Store: st, TZ: time.UTC, Logger: testkit.Logger(t)}
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: time.Minute}, deps)
	require.NoError(t, err)

	// point_settlement: the date's active run (EnqueueSettlementTx refuses a
	// second), the next run number, and batch_job_execution's identity.
	first, err := jobs.EnqueueSettlement(ctx, client, st, "2026-11-20", jobs.SettlementRunOpts{})
	require.NoError(t, err)
	_, err = jobs.EnqueueSettlement(ctx, client, st, "2026-11-20", jobs.SettlementRunOpts{})
	var active *jobs.RunActiveError
	require.ErrorAs(t, err, &active)
	require.Equal(t, first.ID, active.JobID)
	require.NoError(t, st.InTx(ctx, func(tx pgx.Tx) error {
		run, err := st.NextSettlementRunTx(ctx, tx, "2026-11-20")
		require.Equal(t, 2, run)
		return err
	}))
	var identity string
	require.NoError(t, pool.QueryRow(ctx, `SELECT identifying_params::text FROM batch_job_execution WHERE job_execution_id = $1`, first.ID).Scan(&identity))
	require.JSONEq(t, `{"run_date": "2026-11-20", "run": 1}`, identity)

	// coupon_issue_persist: the members whose seat is still in flight.
	_, err = client.Insert(ctx, jobs.CouponIssuePersistArgs{CouponCode: "WELCOME", MemberID: 42, IssuedAt: time.Now()}, nil)
	require.NoError(t, err)
	seats, err := st.CouponSeats(ctx, store.Coupon{ID: -1, Code: "WELCOME"})
	require.NoError(t, err)
	require.Equal(t, []int64{42}, seats.InFlight)

	// therapy_stats: the batch log.
	res, err := client.Insert(ctx, jobs.TherapyStatsArgs{TherapyUserID: 7, Year: 2026, Month: 11, BusinessDate: "2026-11-20", Trigger: "recover"}, nil)
	require.NoError(t, err)
	var user int64
	var year, month int
	var status, trigger string
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT therapy_user_id, year, month, status, trigger FROM therapy_batch_log WHERE job_id = $1`, res.Job.ID).
		Scan(&user, &year, &month, &status, &trigger))
	require.Equal(t, []any{int64(7), 2026, 11, "IN_PROGRESS", "recover"}, []any{user, year, month, status, trigger})

	// The batch page's runs: the daily therapy run by business_date (the
	// recover job above, with a trigger, is not the daily run's), the
	// settlement by run_date, a reconciliation's coupon_code, and the kinds
	// found by when they were created.
	daily, err := client.Insert(ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-11-20"}, nil)
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.TherapyStatsArgs{TherapyUserID: 8, Year: 2026, Month: 11, BusinessDate: "2026-11-20"}, nil)
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.CouponReconcileArgs{CouponCode: "WELCOME"}, nil)
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.CouponExchangeArgs{Name: "x", Description: "y", AmountType: "FIX", Amount: 1, ExpiredCouponID: 1}, nil)
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.OrderSubmitArgs{OrderRequestID: 1}, nil)
	require.NoError(t, err)
	runs, err := st.BatchRuns(ctx, "2026-11-20", "2026-11-20", time.UTC)
	require.NoError(t, err)
	byKind := map[string]store.BatchRun{}
	for _, r := range runs {
		byKind[r.Kind] = r
	}
	require.Equal(t, []int64{daily.Job.ID}, byKind[store.BatchTherapy].JobIDs)
	n, _ := byKind[store.BatchTherapy].Count("jobs")
	require.Equal(t, int64(1), n)
	require.Equal(t, []int64{first.ID}, byKind[store.BatchSettlement].JobIDs)
	today := time.Now().UTC().Format(time.DateOnly)
	runs, err = st.BatchRuns(ctx, today, today, time.UTC)
	require.NoError(t, err)
	for _, r := range runs {
		byKind[r.Kind] = r
	}
	n, _ = byKind[store.BatchCouponReconcile].Count("coupons")
	require.Equal(t, int64(1), n)
	n, _ = byKind[store.BatchExchange].Count("runs")
	require.Equal(t, int64(1), n)
	n, _ = byKind[store.BatchOrders].Count("jobs")
	require.Equal(t, int64(1), n)
}
