package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/store"
)

// seedExpired creates coupon EXPIRED with 1,000 issues: members 1–50 used
// theirs, 51–100 were exchanged before, 101–1000 (900) are to exchange.
func seedExpired(t *testing.T, b *testBundle) store.Coupon {
	t.Helper()
	ctx := context.Background()
	c, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: "EXPIRED", Name: "old", AmountType: "FIX", Amount: 500,
		TotalQuantity: 1000, Status: store.CouponInactive})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `
		INSERT INTO coupon_issue (coupon_id, member_id, used_at, exchanged_at)
		SELECT $1, m, CASE WHEN m <= 50 THEN now() END, CASE WHEN m BETWEEN 51 AND 100 THEN now() END
		FROM generate_series(1, 1000) m`, c.ID)
	require.NoError(t, err)
	return c
}

// Step 2 fails after three chunks have committed (each with its cursor, in
// its transaction); River retries the job, which skips step 1 (its coupon
// exists, made once), resumes step 2 at the saved cursor — doing only the
// remaining chunks — and then notifies. Every member ends with exactly one
// compensation coupon and one notification.
//
// This proves resumption from the transactionally saved cursor after a
// failed attempt in-process; TestExchangeSurvivesSIGKILL (cmd/enqueue)
// kills a real worker process mid step 2.
func TestExchangeResumesStep2WithoutDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	expired := seedExpired(t, b)

	var (
		failed atomic.Bool
		client *Client
		mu     sync.Mutex
		seen   []Progress // the running job's progress after each chunk
	)
	w := river.NewWorkers()
	river.AddWorker(w, &CouponExchangeWorker{deps: b.deps, afterChunk: func(chunk int) error {
		list, err := ListRunningProgress(ctx, client)
		if err != nil {
			return err
		}
		mu.Lock()
		for _, p := range list {
			seen = append(seen, p.Progress)
		}
		mu.Unlock()
		if chunk == 3 && failed.CompareAndSwap(false, true) {
			return errors.New("simulated crash after chunk 3")
		}
		return nil
	}})
	client = b.startClient(t, w)
	res, err := client.Insert(ctx, CouponExchangeArgs{Name: "sorry", Description: "delivery error", AmountType: "RATE",
		Amount: 100, ExpiredCouponID: expired.ID, ChunkSize: 100}, nil)
	require.NoError(t, err)
	id := res.Job.ID
	testkit.WaitFor(t, 30*time.Second, "exchange to complete", func() (bool, error) { return b.jobState(t, id) == "completed", nil })

	job, err := client.JobGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 2, job.Attempt)
	require.Len(t, job.Errors, 1)
	require.Contains(t, job.Errors[0].Error, "simulated crash after chunk 3")
	var meta struct {
		Output CouponExchangeOutput `json:"output"`
	}
	require.NoError(t, json.Unmarshal(job.Metadata, &meta))
	out := meta.Output
	require.Equal(t, ExchangeCouponCode(id), out.CouponCode)
	require.Equal(t, 600, out.ExchangedThisAttempt, "the retry did only what was left")
	require.Equal(t, 7, out.ChunksThisAttempt, "6 full chunks and the empty one that ends the step")
	require.Equal(t, 900, out.Issued)
	require.Equal(t, 900, out.NotifiedThisAttempt)
	_, has := JobProgress(job)
	require.False(t, has, "the final output replaces the progress")

	// Seen while running: each committed chunk, of the 900 issues known at
	// the start; the retry goes on from the 300 of the failed attempt.
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 3+7)
	for i, want := range []int64{100, 200, 300, 400, 500, 600, 700, 800, 900, 900} {
		require.Equal(t, want, seen[i].Done, "chunk %d", i+1)
		require.Equal(t, int64(900), seen[i].Total)
		require.Equal(t, "issues", seen[i].Unit)
	}
	require.Equal(t, int64(10), seen[9].Counts["chunks"])

	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon WHERE code LIKE 'EXCH-%'`))
	c, err := b.store.CouponByCode(ctx, out.CouponCode)
	require.NoError(t, err)
	require.Equal(t, store.CouponInactive, c.Status)
	require.Equal(t, 900, c.IssuedQuantity)
	require.Equal(t, 900, c.TotalQuantity)
	require.Equal(t, 900, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	require.Equal(t, 900, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND member_id BETWEEN 101 AND 1000`, c.ID))
	require.Equal(t, 900, b.count(t, `SELECT count(*) FROM coupon_notification WHERE coupon_id = $1`, c.ID))
	require.Equal(t, 950, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND exchanged_at IS NOT NULL`, expired.ID))
	require.Equal(t, 50, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND used_at IS NOT NULL AND exchanged_at IS NULL`, expired.ID))
}

// A failure in step 3 after step 2 finished resumes at step 3: nothing is
// exchanged again, no notification is written twice.
func TestExchangeRetryAtNotifyStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	expired := seedExpired(t, b)
	// Postgres refuses the first notification insert, as a dropped connection
	// would. The sequence advances even though the statement rolls back.
	_, err := b.pool.Exec(ctx, `
		CREATE SEQUENCE fail_seq;
		CREATE FUNCTION notify_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		  IF nextval('fail_seq') = 1 THEN RAISE EXCEPTION 'simulated failure in step 3'; END IF;
		  RETURN NULL;
		END $$;
		CREATE TRIGGER notify_fail_once AFTER INSERT ON coupon_notification
		  FOR EACH STATEMENT EXECUTE FUNCTION notify_fail_once();`)
	require.NoError(t, err)

	var chunks atomic.Int64
	w := river.NewWorkers()
	river.AddWorker(w, &CouponExchangeWorker{deps: b.deps, afterChunk: func(int) error { chunks.Add(1); return nil }})
	client := b.startClient(t, w)
	res, err := client.Insert(ctx, CouponExchangeArgs{Name: "sorry", AmountType: "FIX", Amount: 1000,
		ExpiredCouponID: expired.ID, ChunkSize: 300}, nil)
	require.NoError(t, err)
	testkit.WaitFor(t, 30*time.Second, "exchange to complete", func() (bool, error) { return b.jobState(t, res.Job.ID) == "completed", nil })

	job, err := client.JobGet(ctx, res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, 2, job.Attempt)
	require.Contains(t, job.Errors[0].Error, "simulated failure in step 3")
	require.EqualValues(t, 4, chunks.Load(), "step 2 ran once: 3 full chunks + the empty one")
	c, err := b.store.CouponByCode(ctx, ExchangeCouponCode(res.Job.ID))
	require.NoError(t, err)
	require.Equal(t, 900, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	require.Equal(t, 900, b.count(t, `SELECT count(*) FROM coupon_notification WHERE coupon_id = $1`, c.ID))
}

// The exchange worker on its own, through rivertest, for the requests it
// refuses before its first step commits. Its steps commit their checkpoints in
// transactions of their own, which need the job row committed and unlocked;
// rivertest holds it in the test's transaction, so the exchange itself is
// tested above with a River client.
func TestCouponExchangeWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		store *store.Store
		tx    pgx.Tx
	}

	setup := func(t *testing.T) (*rivertest.Worker[CouponExchangeArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		deps := Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
		w, tx := testkit.NewWorker(t, pool, &CouponExchangeWorker{deps: deps})
		return w, &testBundle{store: deps.Store, tx: tx}
	}

	// Terms no coupon may have, or an expired coupon that does not exist:
	// cancelled at once (no retry can fix them), and no compensation coupon
	// is created.
	t.Run("RefusedRequestsCancel", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)
		for _, tc := range []struct {
			args CouponExchangeArgs
			want string
		}{
			{CouponExchangeArgs{Name: "sorry", AmountType: "FIX", Amount: 0, ExpiredCouponID: 1}, "amount: want a positive integer, got 0"},
			{CouponExchangeArgs{Name: "sorry", AmountType: "RATE", Amount: 150, ExpiredCouponID: 1}, "amount: a RATE is a percentage"},
			{CouponExchangeArgs{Name: "sorry", AmountType: "FIX", Amount: 1000, ExpiredCouponID: 404}, "expired coupon 404"},
		} {
			res, err := w.Work(ctx, t, b.tx, tc.args, nil)
			require.NoError(t, err)
			require.Equal(t, river.EventKindJobCancelled, res.EventKind, "%+v", tc.args)
			require.Contains(t, res.Job.Errors[0].Error, tc.want)
		}
		var coupons int
		require.NoError(t, b.store.Pool.QueryRow(ctx, `SELECT count(*) FROM coupon`).Scan(&coupons))
		require.Zero(t, coupons)
	})
}
