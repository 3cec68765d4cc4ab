package jobs

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/internal/testredis"
	"github.com/tidemark/tidemark/store"
)

func TestCouponReconcileWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		deps Deps
		pool *pgxpool.Pool
		tx   pgx.Tx
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool, _ := testkit.Pool(t)
		gate, _, _ := testredis.Gate(t)
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		return &testBundle{deps: Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t), Gate: gate,
			ReconcileGrace: time.Millisecond}, pool: pool, tx: tx}
	}

	coupon := func(t *testing.T, b *testBundle, code, status string, total int) {
		t.Helper()
		_, err := b.deps.Store.CreateCoupon(ctx, store.NewCoupon{Code: code, Name: code, AmountType: store.AmountFix,
			Amount: 1000, TotalQuantity: total, Status: status})
		require.NoError(t, err)
		if status == store.CouponActive {
			_, err = b.deps.Gate.Load(ctx, code, int64(total), nil)
			require.NoError(t, err)
		}
	}

	// The periodic fan-out enqueues one coupon_reconcile per ACTIVE coupon
	// and records how many.
	t.Run("AllFansOutPerActiveCoupon", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		coupon(t, b, "A", store.CouponActive, 10)
		coupon(t, b, "B", store.CouponActive, 10)
		coupon(t, b, "OLD", store.CouponInactive, 10)
		w := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Logger: b.deps.Logger}, &CouponReconcileAllWorker{deps: b.deps})

		res, err := w.Work(ctx, t, b.tx, CouponReconcileAllArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var meta struct{ Output map[string]int }
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		require.Equal(t, map[string]int{"active_coupons": 2, "inserted": 2}, meta.Output)
		var codes []string
		for _, j := range rivertest.RequireManyInserted(ctx, t, riverpgxv5.New(b.pool), []rivertest.ExpectedJob{
			{Args: CouponReconcileArgs{}}, {Args: CouponReconcileArgs{}},
		}) {
			var a CouponReconcileArgs
			require.NoError(t, json.Unmarshal(j.EncodedArgs, &a))
			codes = append(codes, a.CouponCode)
		}
		require.ElementsMatch(t, []string{"A", "B"}, codes)
	})

	// A member whose coupon_issue row exists but whom Redis lost is put back
	// in the gate, its seat taken from the stock; the report is the output.
	t.Run("ReconcileRepairsTheGate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		coupon(t, b, "A", store.CouponActive, 10)
		_, err := b.deps.Store.PersistCouponIssue(ctx, "A", 7, time.Now())
		require.NoError(t, err)
		w := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Logger: b.deps.Logger}, &CouponReconcileWorker{deps: b.deps})

		res, err := w.Work(ctx, t, b.tx, CouponReconcileArgs{CouponCode: "A"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var meta struct{ Output CouponReport }
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		require.Equal(t, []int64{7}, meta.Output.AddedBackIDs)
		require.Equal(t, int64(9), *meta.Output.StockAfter)
		st, err := b.deps.Gate.State(ctx, "A")
		require.NoError(t, err)
		require.Equal(t, coupongate.State{Loaded: true, Stock: 9, Members: []int64{7}}, st)
	})

	t.Run("ReconcileUnknownCouponCancels", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Logger: b.deps.Logger}, &CouponReconcileWorker{deps: b.deps})

		res, err := w.Work(ctx, t, b.tx, CouponReconcileArgs{CouponCode: "NOPE"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, "NOPE: not found")
	})
}

// A reconciliation waits its grace inside the job, so its timeout follows
// the configured grace: a long grace must not time every run out.
func TestCouponReconcileTimeoutCoversTheGrace(t *testing.T) {
	t.Parallel()
	for grace, want := range map[time.Duration]time.Duration{
		0:               DefaultReconcileGrace + 45*time.Second,
		4 * time.Minute: 4*time.Minute + 45*time.Second,
	} {
		w := NewCouponReconcileWorker(Deps{ReconcileGrace: grace})
		require.Equal(t, want, w.Timeout(nil), "grace %s", grace)
	}
}
