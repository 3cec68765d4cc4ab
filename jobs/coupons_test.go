package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/internal/testredis"
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
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:           workers,
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		TestOnly:          true,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
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
	c, err := b.store.CreateCoupon(context.Background(), store.NewCoupon{Code: code, Name: code, AmountType: store.AmountRate,
		Amount: 10, TotalQuantity: total, Status: store.CouponActive})
	require.NoError(t, err)
	_, err = b.gate.Load(context.Background(), code, int64(total), nil)
	require.NoError(t, err)
	return c
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
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (b *testBundle) jobState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

func persistWorkers(deps Deps) *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, &CouponIssuePersistWorker{deps: deps})
	return w
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
	river.AddWorker(w, &CouponReconcileAllWorker{deps: b.deps})
	river.AddWorker(w, &CouponReconcileWorker{deps: b.deps})
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
