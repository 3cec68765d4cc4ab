package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/store"
)

type testBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	gate  *coupongate.Gate
	rdb   *redis.Client
	deps  Deps
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := testkit.Pool(t)
	gate, rdb, _ := testredis.Gate(t)
	st := store.New(pool)
	deps := Deps{Store: st, TZ: time.UTC, Logger: testkit.Logger(t), Gate: gate,
		ReconcileGrace: 50 * time.Millisecond}
	return &testBundle{pool: pool, store: st, gate: gate, rdb: rdb, deps: deps}
}

// startClient runs a River client working workers until the test ends.
func (b *testBundle) startClient(t *testing.T, workers *river.Workers) *Client {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Logger:            b.deps.Logger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}, QueueMember: {MaxWorkers: 10}},
		Workers:           workers,
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		TestOnly:          true,
	})
	require.NoError(t, err)
	testkit.StartClient(t, client)
	return client
}

func (b *testBundle) insertClient(t *testing.T) *Client {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Logger: b.deps.Logger})
	require.NoError(t, err)
	return client
}

func (b *testBundle) coupon(t *testing.T, code string, total int) store.Coupon {
	t.Helper()
	return createCoupon(t, b.store, b.gate, code, store.CouponActive, total)
}

// createCoupon creates coupon code with total seats and, when it is ACTIVE,
// loads it in gate.
func createCoupon(t *testing.T, st *store.Store, gate *coupongate.Gate, code, status string, total int) store.Coupon {
	t.Helper()
	c, err := st.CreateCoupon(context.Background(), store.NewCoupon{Code: code, Name: code, AmountType: store.AmountRate,
		Amount: 10, TotalQuantity: total, Status: status})
	require.NoError(t, err)
	if status == store.CouponActive {
		_, err = gate.Load(context.Background(), code, int64(total), nil)
		require.NoError(t, err)
	}
	return c
}

// withGate is a SetupWorker option: a coupon gate on a Redis database of the
// test's own.
func withGate(t *testing.T) func(*Deps) {
	return func(d *Deps) { d.Gate, _, _ = testredis.Gate(t) }
}

// issue takes member's seat in the gate and inserts its persist job with opts.
func (b *testBundle) issue(t *testing.T, client *Client, code string, member int64, opts *river.InsertOpts) *rivertype.JobRow {
	t.Helper()
	res, err := b.gate.Issue(context.Background(), code, member)
	require.NoError(t, err)
	require.Equal(t, coupongate.Issued, res)
	ins, err := client.Insert(context.Background(), CouponIssuePersistArgs{CouponCode: code, MemberID: member, IssuedAt: time.Now()}, opts)
	require.NoError(t, err)
	return ins.Job
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return int(testkit.Count(t, b.pool, sql, args...))
}

func (b *testBundle) jobState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

func persistWorkers(deps Deps) *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, NewCouponIssuePersistWorker(deps))
	return w
}

// A persist job an older release inserted in the default queue, where the
// kind went before it had the member queue, is worked there by a worker that
// works the default queue: River finds a job's worker by its kind, whatever
// its queue.
func TestPersistJobLeftOnDefaultQueueIsWorked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.coupon(t, "LEGACY", 10)
	client, err := NewClient(b.pool, ClientConfig{Queues: map[string]int{QueueDefault: 2}, Retention: 24 * time.Hour,
		RescueAfter: time.Minute, FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}, b.deps)
	require.NoError(t, err)
	job := b.issue(t, client, "LEGACY", 7, &river.InsertOpts{Queue: QueueDefault})
	require.Equal(t, QueueDefault, job.Queue)
	testkit.StartClient(t, client)
	testkit.WaitFor(t, 10*time.Second, "the persist job on the default queue completed", func() (bool, error) {
		return b.jobState(t, job.ID) == "completed", nil
	})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
		WHERE c.code = 'LEGACY' AND i.member_id = 7`))
}

// A persist job that fails on its last attempt gives the seat back in Redis
// and records the member in failed_coupon_issue; earlier attempts do not.
func TestPersistFinalFailureCompensates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.coupon(t, "BROKEN", 10)
	// Postgres refuses member 666's row, as a broken disk or constraint would.
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.member_id = 666 THEN RAISE EXCEPTION 'simulated write failure'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_666 BEFORE INSERT ON coupon_issue FOR EACH ROW EXECUTE FUNCTION refuse_666();`)
	require.NoError(t, err)
	client := b.startClient(t, persistWorkers(b.deps))

	ok := b.issue(t, client, "BROKEN", 1, nil)
	// Two attempts: the first failure is retried (not compensated: had it
	// been, the final one would record a second failure row), the second is
	// final.
	bad := b.issue(t, client, "BROKEN", 666, &river.InsertOpts{MaxAttempts: 2})

	testkit.WaitFor(t, 20*time.Second, "final attempt", func() (bool, error) { return b.jobState(t, bad.ID) == "discarded", nil })
	testkit.WaitFor(t, 10*time.Second, "good job", func() (bool, error) { return b.jobState(t, ok.ID) == "completed", nil })

	st, err := b.gate.State(ctx, "BROKEN")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{1}, st.Members)
	require.EqualValues(t, 9, st.Stock, "666's seat is back")
	failed, err := b.store.FailedCouponIssues(ctx, "BROKEN")
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.EqualValues(t, 666, failed[0].MemberID)
	require.Contains(t, failed[0].Reason, "simulated write failure")
	require.Contains(t, failed[0].Reason, "attempt 2 of 2")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon_issue`))

	// The safety net finds nothing to roll back or add.
	rep, err := ReconcileCoupon(ctx, b.deps, "BROKEN", false)
	require.NoError(t, err)
	require.Zero(t, rep.RolledBack)
	require.Zero(t, rep.AddedBack)
}

// A member only in Redis whose persist job has not run yet is in flight: the
// reconciliation leaves it alone. Once its job is gone for good (here:
// cancelled), the next reconciliation rolls it back.
func TestReconcileKeepsInFlightIssue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.coupon(t, "INFLIGHT", 5)
	client := b.insertClient(t) // no workers: the job stays available
	job := b.issue(t, client, "INFLIGHT", 7, nil)

	for _, dry := range []bool{true, false} {
		rep, err := ReconcileCoupon(ctx, b.deps, "INFLIGHT", dry)
		require.NoError(t, err)
		require.Equal(t, 1, rep.KeptInFlight, "dry %v", dry)
		require.Equal(t, []int64{7}, rep.KeptInFlightIDs)
		require.Zero(t, rep.RolledBack)
	}
	st, err := b.gate.State(ctx, "INFLIGHT")
	require.NoError(t, err)
	require.Equal(t, []int64{7}, st.Members)
	require.EqualValues(t, 4, st.Stock)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM failed_coupon_issue`))

	_, err = client.JobCancel(ctx, job.ID)
	require.NoError(t, err)
	rep, err := ReconcileCoupon(ctx, b.deps, "INFLIGHT", false)
	require.NoError(t, err)
	require.Equal(t, []int64{7}, rep.RolledBackIDs)
	st, err = b.gate.State(ctx, "INFLIGHT")
	require.NoError(t, err)
	require.Empty(t, st.Members)
	require.EqualValues(t, 5, st.Stock)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM failed_coupon_issue WHERE coupon_code = 'INFLIGHT' AND member_id = 7`))
}

// --dry-run reports every disagreement and changes nothing; the real run then
// repairs them all: a Redis-only member is rolled back and recorded, a
// Postgres-only member is added back, stock and issued_quantity re-synced.
func TestReconcileDryRunThenRepair(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c := b.coupon(t, "DRIFT", 10)
	client := b.startClient(t, persistWorkers(b.deps))
	for m := int64(1); m <= 4; m++ {
		job := b.issue(t, client, "DRIFT", m, nil)
		testkit.WaitFor(t, 10*time.Second, "persist", func() (bool, error) { return b.jobState(t, job.ID) == "completed", nil })
	}
	// Member 50 only in Redis, with no job (a lost message); member 2 lost
	// from Redis; a wrong counter.
	res, err := b.gate.Issue(ctx, "DRIFT", 50)
	require.NoError(t, err)
	require.Equal(t, coupongate.Issued, res)
	_, err = b.rdb.SRem(ctx, b.gate.IssuedKey("DRIFT"), 2).Result()
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE coupon SET issued_quantity = 999 WHERE id = $1`, c.ID)
	require.NoError(t, err)

	before, err := b.gate.State(ctx, "DRIFT")
	require.NoError(t, err)
	dry, err := ReconcileCoupon(ctx, b.deps, "DRIFT", true)
	require.NoError(t, err)
	require.Equal(t, []int64{50}, dry.RolledBackIDs)
	require.Equal(t, []int64{2}, dry.AddedBackIDs)
	require.Equal(t, 999, dry.IssuedQtyWas)
	require.Equal(t, 4, dry.IssuedQtyNow)
	require.False(t, dry.Agrees)
	after, err := b.gate.State(ctx, "DRIFT")
	require.NoError(t, err)
	require.Equal(t, before, after, "dry run changed Redis")
	require.Equal(t, 999, b.count(t, `SELECT issued_quantity FROM coupon WHERE id = $1`, c.ID))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM failed_coupon_issue`))

	rep, err := ReconcileCoupon(ctx, b.deps, "DRIFT", false)
	require.NoError(t, err)
	require.Equal(t, []int64{50}, rep.RolledBackIDs)
	require.Equal(t, []int64{2}, rep.AddedBackIDs)
	require.EqualValues(t, 6, *rep.StockAfter)
	st, err := b.gate.State(ctx, "DRIFT")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{1, 2, 3, 4}, st.Members)
	require.EqualValues(t, 6, st.Stock)
	require.Equal(t, 4, b.count(t, `SELECT issued_quantity FROM coupon WHERE id = $1`, c.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM failed_coupon_issue WHERE member_id = 50`))

	again, err := ReconcileCoupon(ctx, b.deps, "DRIFT", false)
	require.NoError(t, err)
	require.True(t, again.Agrees, "%+v", again)
}

// Redis loses everything (FLUSHDB, on a Redis database of this test's own)
// while issues are in flight. The gate answers "not loaded" until the
// reconciliation rebuilds it from Postgres and the unfinished persist jobs:
// no seat is handed out twice, and after the jobs finish all agree.
func TestReconcileAfterRedisFlush(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	opt, err := redis.ParseURL(testredis.URL())
	require.NoError(t, err)
	opt.DB = 15 // used by this test only: it is flushed
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.FlushDB(context.Background()); rdb.Close() })
	b.gate = coupongate.New(rdb, "")
	b.deps.Gate = b.gate

	c := b.coupon(t, "FLUSH", 20)
	client := b.startClient(t, persistWorkers(b.deps))
	var done []*rivertype.JobRow
	for m := int64(1); m <= 8; m++ {
		done = append(done, b.issue(t, client, "FLUSH", m, nil))
	}
	for _, j := range done {
		testkit.WaitFor(t, 10*time.Second, "persist", func() (bool, error) { return b.jobState(t, j.ID) == "completed", nil })
	}
	// Three more are in flight: their jobs wait (scheduled) when Redis dies.
	var pending []int64
	for m := int64(9); m <= 11; m++ {
		j := b.issue(t, client, "FLUSH", m, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
		pending = append(pending, j.ID)
	}
	require.NoError(t, rdb.FlushDB(ctx).Err())
	res, err := b.gate.Issue(ctx, "FLUSH", 100)
	require.NoError(t, err)
	require.Equal(t, coupongate.NotLoaded, res)

	rep, err := ReconcileCoupon(ctx, b.deps, "FLUSH", false)
	require.NoError(t, err)
	require.False(t, rep.RedisLoaded)
	require.Equal(t, 11, rep.AddedBack, "8 persisted + 3 in flight")
	require.EqualValues(t, 9, *rep.StockAfter)

	// Issuing works again, and the in-flight members still hold their seats.
	res, err = b.gate.Issue(ctx, "FLUSH", 10)
	require.NoError(t, err)
	require.Equal(t, coupongate.AlreadyIssued, res)
	for _, id := range pending {
		_, err := client.JobRetry(ctx, id) // run the scheduled job now
		require.NoError(t, err)
	}
	for _, id := range pending {
		testkit.WaitFor(t, 10*time.Second, "in-flight persist", func() (bool, error) { return b.jobState(t, id) == "completed", nil })
	}
	rep, err = ReconcileCoupon(ctx, b.deps, "FLUSH", false)
	require.NoError(t, err)
	require.True(t, rep.Agrees || (rep.RolledBack == 0 && rep.AddedBack == 0), "%+v", rep)
	require.Equal(t, 11, rep.IssuedQtyNow)
	require.Equal(t, 11, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	st, err := b.gate.State(ctx, "FLUSH")
	require.NoError(t, err)
	require.Len(t, st.Members, 11)
	require.EqualValues(t, 9, st.Stock)
}

// The periodic fan-out inserts one coupon_reconcile per ACTIVE coupon, unique
// per coupon per period: a second fan-out in the same period adds none.
func TestReconcileFanOutUniquePerPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.coupon(t, "FA", 1)
	b.coupon(t, "FB", 1)
	_, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: "FOFF", Name: "off", AmountType: "FIX", Amount: 1, Status: "INACTIVE"})
	require.NoError(t, err)
	w := river.NewWorkers()
	river.AddWorker(w, NewCouponReconcileAllWorker(b.deps))
	river.AddWorker(w, NewCouponReconcileWorker(b.deps))
	client := b.startClient(t, w)
	for i := 0; i < 2; i++ {
		_, err := client.Insert(ctx, CouponReconcileAllArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled}}})
		require.NoError(t, err)
		testkit.WaitFor(t, 10*time.Second, "fan-out", func() (bool, error) {
			return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_reconcile_all' AND state = 'completed'`) == i+1, nil
		})
	}
	testkit.WaitFor(t, 10*time.Second, "reconciles", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_reconcile' AND state = 'completed'`) == 2, nil
	})
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_reconcile'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_reconcile' AND args->>'coupon_code' = 'FA'
		AND metadata->'output'->>'agrees' = 'true'`))
}

// A persist job that arrives after its seat was given back (here: the
// reconciliation rolled the issue back because its job came too late) takes
// a seat again if one is left, and fails for good — recorded, nothing written
// — if the coupon sold out meanwhile. A late job never oversells.
func TestLatePersistJobNeverOversells(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	full := b.coupon(t, "LATEFULL", 1)
	spare := b.coupon(t, "LATESPARE", 2)
	client := b.insertClient(t)
	var late []int64
	for _, code := range []string{"LATEFULL", "LATESPARE"} {
		res, err := b.gate.Issue(ctx, code, 1) // member 1's request stalls before its job insert
		require.NoError(t, err)
		require.Equal(t, coupongate.Issued, res)
		rep, err := ReconcileCoupon(ctx, b.deps, code, false)
		require.NoError(t, err)
		require.Equal(t, []int64{1}, rep.RolledBackIDs)
		b.issue(t, client, code, 2, nil) // member 2 takes the seat given back
		j, err := client.Insert(ctx, CouponIssuePersistArgs{CouponCode: code, MemberID: 1, IssuedAt: time.Now()}, nil)
		require.NoError(t, err)
		late = append(late, j.Job.ID)
	}
	b.startClient(t, persistWorkers(b.deps))
	testkit.WaitFor(t, 10*time.Second, "late job on the sold-out coupon", func() (bool, error) { return b.jobState(t, late[0]) == "cancelled", nil })
	testkit.WaitFor(t, 10*time.Second, "late job on the coupon with a seat left", func() (bool, error) { return b.jobState(t, late[1]) == "completed", nil })
	testkit.WaitFor(t, 10*time.Second, "member 2's jobs", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE args->>'member_id' = '2' AND state = 'completed'`) == 2, nil
	})

	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, full.ID), "no oversell")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND member_id = 2`, full.ID))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM failed_coupon_issue WHERE coupon_code = 'LATEFULL' AND member_id = 1`),
		"the rollback and the late job's failure")
	st, err := b.gate.State(ctx, "LATEFULL")
	require.NoError(t, err)
	require.Equal(t, []int64{2}, st.Members)
	require.EqualValues(t, 0, st.Stock)

	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, spare.ID))
	st, err = b.gate.State(ctx, "LATESPARE")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{1, 2}, st.Members)
	require.EqualValues(t, 0, st.Stock)
	rep, err := ReconcileCoupon(ctx, b.deps, "LATESPARE", false)
	require.NoError(t, err)
	require.Zero(t, rep.RolledBack+rep.AddedBack)
}

// exchangeWorker is the exchange worker calling afterChunk after each
// committed chunk, each of which also records the run's progress.
func exchangeWorker(deps Deps, afterChunk func(chunk int) error) *CouponExchangeWorker {
	w := NewCouponExchangeWorker(deps)
	w.afterChunk, w.progressEvery = afterChunk, 0
	return w
}

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
	river.AddWorker(w, exchangeWorker(b.deps, func(chunk int) error {
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
	}))
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
	out := OutputOf[CouponExchangeOutput](t, job)
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
	river.AddWorker(w, exchangeWorker(b.deps, func(int) error { chunks.Add(1); return nil }))
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

	// Terms no coupon may have, or an expired coupon that does not exist:
	// cancelled at once (no retry can fix them), and no compensation coupon
	// is created.
	b := SetupWorker(t, NewCouponExchangeWorker)
	for _, tc := range []struct {
		args CouponExchangeArgs
		want string
	}{
		{CouponExchangeArgs{Name: "sorry", AmountType: "FIX", Amount: 0, ExpiredCouponID: 1}, "amount: want a positive integer, got 0"},
		{CouponExchangeArgs{Name: "sorry", AmountType: "RATE", Amount: 150, ExpiredCouponID: 1}, "amount: a RATE is a percentage"},
		{CouponExchangeArgs{Name: "sorry", AmountType: "FIX", Amount: 1000, ExpiredCouponID: 404}, "expired coupon 404"},
	} {
		b.RequireCancelled(t, tc.args, tc.want)
	}
	var coupons int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM coupon`).Scan(&coupons))
	require.Zero(t, coupons)
}

func TestCouponIssuePersistWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	issuedAt := time.Date(2026, 11, 20, 10, 0, 0, 0, testkit.TZ())

	// setup creates coupon ONE with a single seat, loaded in the gate.
	setup := func(t *testing.T) *WorkerBundle[CouponIssuePersistArgs] {
		t.Helper()
		b := SetupWorker(t, NewCouponIssuePersistWorker, withGate(t))
		createCoupon(t, b.Store, b.Deps.Gate, "ONE", store.CouponActive, 1)
		return b
	}

	// The member the gate let through gets its coupon_issue row, issued at
	// the time of the request, and keeps its seat.
	t.Run("WritesTheIssue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.Deps.Gate.Issue(ctx, "ONE", 42)
		require.NoError(t, err)
		require.Equal(t, coupongate.Issued, res)

		b.Work(t, CouponIssuePersistArgs{CouponCode: "ONE", MemberID: 42, IssuedAt: issuedAt}, river.EventKindJobCompleted)
		var at time.Time
		require.NoError(t, b.Pool.QueryRow(ctx, `SELECT i.issued_at FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
			WHERE c.code = 'ONE' AND i.member_id = 42`).Scan(&at))
		require.True(t, at.Equal(issuedAt), "issued at %s", at)
		st, err := b.Deps.Gate.State(ctx, "ONE")
		require.NoError(t, err)
		require.Equal(t, coupongate.State{Loaded: true, Stock: 0, Members: []int64{42}}, st)
	})

	// A job that arrives after its seat was given back, when the coupon has
	// sold out meanwhile, fails for good: nothing is written, so nothing is
	// oversold, and the member is recorded in failed_coupon_issue.
	t.Run("LateJobOnASoldOutCouponCancels", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, m := range []int64{42, 43} { // 42's seat is given back and taken by 43
			_, err := b.Deps.Gate.Issue(ctx, "ONE", m)
			require.NoError(t, err)
			if m == 42 {
				_, err = b.Deps.Gate.Undo(ctx, "ONE", 42)
				require.NoError(t, err)
			}
		}

		b.RequireCancelled(t, CouponIssuePersistArgs{CouponCode: "ONE", MemberID: 42, IssuedAt: issuedAt}, "the coupon sold out meanwhile")
		var issues, failed int
		require.NoError(t, b.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM coupon_issue),
			(SELECT count(*) FROM failed_coupon_issue WHERE coupon_code = 'ONE' AND member_id = 42)`).Scan(&issues, &failed))
		require.Equal(t, []int{0, 1}, []int{issues, failed})
	})

	// Without a gate (REDIS_URL unset) the job fails and is retried later,
	// once Redis may be configured.
	t.Run("NoGateRetries", func(t *testing.T) {
		t.Parallel()
		b := SetupWorker(t, NewCouponIssuePersistWorker)

		wr, err := b.Worker.Work(ctx, t, b.Tx, CouponIssuePersistArgs{CouponCode: "ONE", MemberID: 42, IssuedAt: issuedAt}, nil)
		require.ErrorContains(t, err, "no coupon gate configured")
		require.Equal(t, river.EventKindJobFailed, wr.EventKind)
		require.Nil(t, wr.Job.FinalizedAt, "to be retried")
		require.True(t, wr.Job.ScheduledAt.After(time.Now()), "with backoff")
	})
}

func TestCouponReconcileWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	withShortGrace := func(d *Deps) { d.ReconcileGrace = time.Millisecond }

	// The periodic fan-out enqueues one coupon_reconcile per ACTIVE coupon
	// and records how many.
	t.Run("AllFansOutPerActiveCoupon", func(t *testing.T) {
		t.Parallel()
		b := SetupWorker(t, NewCouponReconcileAllWorker, withGate(t), withShortGrace)
		createCoupon(t, b.Store, b.Deps.Gate, "A", store.CouponActive, 10)
		createCoupon(t, b.Store, b.Deps.Gate, "B", store.CouponActive, 10)
		createCoupon(t, b.Store, b.Deps.Gate, "OLD", store.CouponInactive, 10)

		res := b.Work(t, CouponReconcileAllArgs{}, river.EventKindJobCompleted)
		require.Equal(t, map[string]int{"active_coupons": 2, "inserted": 2}, OutputOf[map[string]int](t, res.Job))
		var codes []string
		for _, j := range rivertest.RequireManyInserted(ctx, t, b.Driver, []rivertest.ExpectedJob{
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
		b := SetupWorker(t, NewCouponReconcileWorker, withGate(t), withShortGrace)
		createCoupon(t, b.Store, b.Deps.Gate, "A", store.CouponActive, 10)
		_, err := b.Store.PersistCouponIssue(ctx, "A", 7, time.Now())
		require.NoError(t, err)

		res := b.Work(t, CouponReconcileArgs{CouponCode: "A"}, river.EventKindJobCompleted)
		out := OutputOf[CouponReport](t, res.Job)
		require.Equal(t, []int64{7}, out.AddedBackIDs)
		require.Equal(t, int64(9), *out.StockAfter)
		st, err := b.Deps.Gate.State(ctx, "A")
		require.NoError(t, err)
		require.Equal(t, coupongate.State{Loaded: true, Stock: 9, Members: []int64{7}}, st)
	})

	t.Run("ReconcileUnknownCouponCancels", func(t *testing.T) {
		t.Parallel()
		b := SetupWorker(t, NewCouponReconcileWorker, withGate(t), withShortGrace)
		b.RequireCancelled(t, CouponReconcileArgs{CouponCode: "NOPE"}, "NOPE: not found")
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
