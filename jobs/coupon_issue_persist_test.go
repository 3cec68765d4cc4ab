package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/internal/testredis"
	"github.com/tidemark/tidemark/store"
)

func TestCouponIssuePersistWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		gate  *coupongate.Gate
		store *store.Store
		tx    pgx.Tx
	}

	// setup creates coupon ONE with a single seat, loaded in the gate.
	setup := func(t *testing.T, deps func(*Deps)) (*rivertest.Worker[CouponIssuePersistArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		gate, _, _ := testredis.Gate(t)
		d := Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t), Gate: gate}
		if deps != nil {
			deps(&d)
		}
		_, err := d.Store.CreateCoupon(ctx, store.NewCoupon{Code: "ONE", Name: "one seat", AmountType: store.AmountFix,
			Amount: 1000, TotalQuantity: 1, Status: store.CouponActive})
		require.NoError(t, err)
		_, err = gate.Load(ctx, "ONE", 1, nil)
		require.NoError(t, err)
		w, tx := testkit.NewWorker(t, pool, &CouponIssuePersistWorker{deps: d})
		return w, &testBundle{gate: gate, store: d.Store, tx: tx}
	}

	issuedAt := time.Date(2026, 11, 20, 10, 0, 0, 0, testkit.TZ())

	// The member the gate let through gets its coupon_issue row, issued at
	// the time of the request, and keeps its seat.
	t.Run("WritesTheIssue", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t, nil)
		res, err := b.gate.Issue(ctx, "ONE", 42)
		require.NoError(t, err)
		require.Equal(t, coupongate.Issued, res)

		wr, err := w.Work(ctx, t, b.tx, CouponIssuePersistArgs{CouponCode: "ONE", MemberID: 42, IssuedAt: issuedAt}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, wr.EventKind)
		var at time.Time
		require.NoError(t, b.store.Pool.QueryRow(ctx, `SELECT i.issued_at FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
			WHERE c.code = 'ONE' AND i.member_id = 42`).Scan(&at))
		require.True(t, at.Equal(issuedAt), "issued at %s", at)
		st, err := b.gate.State(ctx, "ONE")
		require.NoError(t, err)
		require.Equal(t, coupongate.State{Loaded: true, Stock: 0, Members: []int64{42}}, st)
	})

	// A job that arrives after its seat was given back, when the coupon has
	// sold out meanwhile, fails for good: nothing is written, so nothing is
	// oversold, and the member is recorded in failed_coupon_issue.
	t.Run("LateJobOnASoldOutCouponCancels", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t, nil)
		for _, m := range []int64{42, 43} { // 42's seat is given back and taken by 43
			_, err := b.gate.Issue(ctx, "ONE", m)
			require.NoError(t, err)
			if m == 42 {
				_, err = b.gate.Undo(ctx, "ONE", 42)
				require.NoError(t, err)
			}
		}

		wr, err := w.Work(ctx, t, b.tx, CouponIssuePersistArgs{CouponCode: "ONE", MemberID: 42, IssuedAt: issuedAt}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, wr.EventKind)
		require.Contains(t, wr.Job.Errors[0].Error, "the coupon sold out meanwhile")
		var issues, failed int
		require.NoError(t, b.store.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM coupon_issue),
			(SELECT count(*) FROM failed_coupon_issue WHERE coupon_code = 'ONE' AND member_id = 42)`).Scan(&issues, &failed))
		require.Equal(t, []int{0, 1}, []int{issues, failed})
	})

	// Without a gate (REDIS_URL unset) the job fails and is retried later,
	// once Redis may be configured.
	t.Run("NoGateRetries", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t, func(d *Deps) { d.Gate = nil })

		wr, err := w.Work(ctx, t, b.tx, CouponIssuePersistArgs{CouponCode: "ONE", MemberID: 42, IssuedAt: issuedAt}, nil)
		require.ErrorContains(t, err, "no coupon gate configured")
		require.Equal(t, river.EventKindJobFailed, wr.EventKind)
		require.Nil(t, wr.Job.FinalizedAt, "to be retried")
		require.True(t, wr.Job.ScheduledAt.After(time.Now()), "with backoff")
	})
}
