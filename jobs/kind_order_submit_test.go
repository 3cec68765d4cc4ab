package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/partnersim"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/store"
)

// partner is the third party's order API, seen from the test.
type partner struct {
	tpURL string
	api   *orderapi.Client
}

func newPartner(url string) partner {
	return partner{tpURL: url, api: orderapi.New(url, 5*time.Second, 4)}
}

// inProcess is a SetupWorker option: it runs the simulated third party
// in-process, on a database of its own as a partner has, as the worker's
// order API, and sets p to it.
func (p *partner) inProcess(t *testing.T) func(*jobs.Deps) {
	return func(d *jobs.Deps) {
		pool, _ := testkit.Pool(t)
		tp, err := partnersim.New(context.Background(), pool, partnersim.Faults{}, d.Logger)
		require.NoError(t, err)
		srv := httptest.NewServer(tp.Handler())
		t.Cleanup(func() { tp.Close(); srv.Close() })
		*p = newPartner(srv.URL)
		d.OrderAPI = p.api
	}
}

func (p partner) stats(t *testing.T) partnersim.Stats {
	t.Helper()
	resp, err := http.Get(p.tpURL + "/_stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var s partnersim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// requestInputs are n requests user001…, month 2025-02.
func requestInputs(n int) []order.Request {
	in := make([]order.Request, n)
	for i := range in {
		in[i] = order.Request{Username: fmt.Sprintf("user%03d", i+1), TotalPrice: int64(1000 * (i + 1)), AppliedYearMonth: "2025-02"}
	}
	return in
}

// insertRows inserts requestInputs(n) as PENDING rows without their jobs.
func insertRows(t *testing.T, st *store.Store, n int) []int64 {
	t.Helper()
	var ids []int64
	require.NoError(t, st.InTx(context.Background(), func(tx pgx.Tx) (err error) {
		ids, err = st.InsertOrderRequestsTx(context.Background(), tx, requestInputs(n))
		return err
	}))
	return ids
}

// orderBundle is one end-to-end setup: a database of its own, the real
// cmd/thirdparty on it, and an insert-only River client.
type orderBundle struct {
	dbURL  string
	pool   *pgxpool.Pool
	store  *store.Store
	client *jobs.Client
	tp     *testbin.Proc
	partner
}

// setupOrders starts cmd/thirdparty with args (fault flags) on a fresh database.
func setupOrders(t *testing.T, tpArgs ...string) *orderBundle {
	t.Helper()
	pool, dbURL := testkit.Pool(t)
	st := store.New(pool)
	logger := testkit.Logger(t)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second},
		jobs.Deps{Store: st, TZ: time.UTC, Logger: logger})
	require.NoError(t, err)
	b := &orderBundle{dbURL: dbURL, pool: pool, store: st, client: client}
	var tpURL string
	b.tp, tpURL = testbin.StartThirdParty(t, dbURL, tpArgs...)
	b.partner = newPartner(tpURL)
	return b
}

// startWorker runs the real worker binary against the bundle.
func (b *orderBundle) startWorker(t *testing.T, env ...string) *testbin.Proc {
	t.Helper()
	return testbin.StartWorker(t, append([]string{
		"DATABASE_URL=" + b.dbURL,
		"ORDER_API_URL=" + b.tpURL,
		"PERIODIC_JOBS=false",
		"ORDER_CALL_TIMEOUT=2s",
	}, env...)...)
}

// insertRequests creates requestInputs(n) with their jobs.
func (b *orderBundle) insertRequests(t *testing.T, n int) []jobs.CreatedOrderRequest {
	t.Helper()
	created, err := jobs.CreateOrderRequests(context.Background(), b.client, b.store, requestInputs(n))
	require.NoError(t, err)
	require.Len(t, created, n)
	return created
}

// waitSettled polls until no row is PENDING or SENDING.
func (b *orderBundle) waitSettled(t *testing.T, timeout time.Duration) map[string]int64 {
	t.Helper()
	var counts map[string]int64
	testkit.WaitFor(t, timeout, "every row settled", func() (bool, error) {
		var err error
		counts, err = b.store.OrderStatusCounts(context.Background())
		if err != nil {
			return false, err
		}
		return counts[order.Pending]+counts[order.Sending] == 0, nil
	})
	return counts
}

// requireAllApplied waits until every row is settled, requires all n
// APPLIED with one order each at the third party, and returns the third
// party's counts.
func (b *orderBundle) requireAllApplied(t *testing.T, n int64, timeout time.Duration) partnersim.Stats {
	t.Helper()
	counts := b.waitSettled(t, timeout)
	require.Equal(t, map[string]int64{order.Applied: n}, counts)
	s := b.stats(t)
	require.Equal(t, n, s.Orders)
	return s
}

// waitMidBatch waits until 20 rows are APPLIED and some are in flight: the
// partner answers concurrent calls together, so right after an apply there
// can be a moment with none SENDING.
func (b *orderBundle) waitMidBatch(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "20 rows APPLIED and some SENDING", func() (bool, error) {
		c, err := b.store.OrderStatusCounts(context.Background())
		if err != nil {
			return false, err
		}
		return c[order.Applied] >= 20 && c[order.Sending] > 0, nil
	})
}

// rows returns every order_request row.
func (b *orderBundle) rows(t *testing.T) []store.OrderRequest {
	t.Helper()
	rows, err := b.store.OrderRequestsAfter(context.Background(), 0, 100000)
	require.NoError(t, err)
	return rows
}

// requireAgreement checks every APPLIED row against the third party's order
// for its user-month: same id, same creation time, same price.
func (b *orderBundle) requireAgreement(t *testing.T) {
	t.Helper()
	theirs, err := b.api.List(context.Background(), 0, 10000)
	require.NoError(t, err)
	byKey := map[string]orderapi.Order{}
	for _, o := range theirs {
		byKey[o.Username+"/"+o.AppliedYearMonth] = o
	}
	applied := 0
	for _, r := range b.rows(t) {
		if r.Status != order.Applied {
			continue
		}
		applied++
		o, ok := byKey[r.Username+"/"+r.AppliedYearMonth]
		require.True(t, ok, "row %d APPLIED but the third party has no order", r.ID)
		require.NotNil(t, r.ExternalOrderID)
		require.Equal(t, o.ID, *r.ExternalOrderID, "row %d external id", r.ID)
		require.True(t, o.CreatedAt.Equal(*r.ExternalCreatedAt), "row %d external time %s vs %s", r.ID, r.ExternalCreatedAt, o.CreatedAt)
		require.Equal(t, o.TotalPrice, r.TotalPrice)
	}
	require.Equal(t, len(theirs), applied, "third party orders vs our APPLIED rows")

	// Every APPLIED row's job completes (River completes it once Work has
	// returned, moments after the row's commit), and no job completed with
	// its row still unsettled.
	var notCompleted, completedUnsettled int
	testkit.WaitFor(t, 10*time.Second, "every APPLIED row's job completed", func() (bool, error) {
		if err := b.pool.QueryRow(context.Background(), `
			SELECT count(*) FILTER (WHERE o.status = 'APPLIED' AND j.state <> 'completed'),
			       count(*) FILTER (WHERE o.status <> 'APPLIED' AND j.state = 'completed')
			FROM order_request o
			JOIN river_job j ON j.kind = 'order_submit' AND (j.args->>'order_request_id')::bigint = o.id`).Scan(&notCompleted, &completedUnsettled); err != nil {
			return false, err
		}
		return notCompleted == 0, nil
	})
	require.Zero(t, completedUnsettled, "completed jobs whose row is not APPLIED")
}

// The seed's scenario: the 96th POST fails. Only that item is posted again
// (after a lookup shows it was not stored); nothing else is re-posted.
func TestOrderSubmit_SeedFailNth96(t *testing.T) {
	t.Parallel()
	b := setupOrders(t, "--fail-nth", "96")
	b.insertRequests(t, 100)
	b.startWorker(t)

	s := b.requireAllApplied(t, 100, 60*time.Second)
	require.Equal(t, int64(101), s.Posts)
	require.Equal(t, int64(0), s.Conflicts)
	b.requireAgreement(t)
}

// A 500 after the order was stored, and a hang after it was stored: the
// retry looks the order up and applies it without a second POST.
func TestOrderSubmit_UnknownOutcomeAfterCommit(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"--fail-after-commit-nth", "--hang-after-commit-nth"} {
		t.Run(strings.TrimPrefix(fault, "--"), func(t *testing.T) {
			t.Parallel()
			b := setupOrders(t, fault, "96")
			b.insertRequests(t, 100)
			b.startWorker(t)

			s := b.requireAllApplied(t, 100, 60*time.Second)
			require.Equal(t, int64(100), s.Posts, "no second POST for the item whose outcome was unknown")
			require.Equal(t, int64(1), s.Injected)
			b.requireAgreement(t)

			retried := 0
			for _, r := range b.rows(t) {
				if r.Attempts > 1 {
					retried++
				}
			}
			require.Equal(t, 1, retried, "exactly one row needed a second attempt")
		})
	}
}

// A 400 for one user: that row FAILED with the reason, its job cancelled;
// every other row APPLIED. Re-queuing the cancelled job sends it again.
func TestOrderSubmit_BadRequestFails(t *testing.T) {
	t.Parallel()
	b := setupOrders(t, "--reject-usernames", "user042")
	created := b.insertRequests(t, 100)
	b.startWorker(t)

	counts := b.waitSettled(t, 60*time.Second)
	require.Equal(t, map[string]int64{order.Applied: 99, order.Failed: 1}, counts)
	row, err := b.store.GetOrderRequest(context.Background(), created[41].ID)
	require.NoError(t, err)
	require.Equal(t, order.Failed, row.Status)
	require.NotNil(t, row.LastError)
	require.Contains(t, *row.LastError, "400")
	require.Contains(t, *row.LastError, "user042 is not allowed to order")
	require.Nil(t, row.ExternalOrderID)
	require.Equal(t, int64(99), b.stats(t).Orders)
	b.requireAgreement(t)

	// The row is FAILED before River records the job's cancellation.
	testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("job %d cancelled", created[41].JobID), func() (bool, error) {
		job, err := b.client.JobGet(context.Background(), created[41].JobID)
		if err != nil {
			return false, err
		}
		return job.State == rivertype.JobStateCancelled, nil
	})

	// The partner accepts the user again; the operator re-queues the
	// cancelled job and the row is sent after all.
	req, err := http.NewRequest(http.MethodPut, b.tpURL+"/_faults", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	code, stdout, stderr := testbin.Run(t, testbin.Build(t, "enqueue"), []string{"DATABASE_URL=" + b.dbURL},
		"retry", "--kind", "order_submit", "--state", "cancelled")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "retried 1")
	testkit.WaitFor(t, 30*time.Second, "the re-queued row APPLIED", func() (bool, error) {
		row, err := b.store.GetOrderRequest(context.Background(), created[41].ID)
		if err != nil {
			return false, err
		}
		return row.Status == order.Applied, nil
	})
	require.Equal(t, int64(100), b.stats(t).Orders)
	b.requireAgreement(t)
}

// Two worker processes on one database: every row APPLIED once, no order
// sent twice.
func TestOrderSubmit_TwoWorkers(t *testing.T) {
	t.Parallel()
	b := setupOrders(t, "--latency", "20ms")
	b.insertRequests(t, 200)
	w1 := b.startWorker(t, "TIDEMARK_QUEUES=outbound=8")
	w2 := b.startWorker(t, "TIDEMARK_QUEUES=outbound=8")

	s := b.requireAllApplied(t, 200, 60*time.Second)
	require.Equal(t, int64(200), s.Posts, "no order sent twice")
	require.Equal(t, int64(0), s.Conflicts)
	b.requireAgreement(t)
	require.Zero(t, b.rescuedJobs(t), "a live worker's jobs are never rescued")
	require.NoError(t, w1.Stop(30*time.Second))
	require.NoError(t, w2.Stop(30*time.Second))
}

// The worker SIGKILLed mid-batch, then restarted: River's rescuer in the
// restarted worker hands back the jobs the dead one was running once they
// have run longer than order_submit's timeout (50 s; it checks every 30 s);
// they finish with a lookup; every row APPLIED, exactly one order each.
func TestOrderSubmit_WorkerKilled(t *testing.T) {
	t.Parallel()
	b := setupOrders(t, "--latency", "100ms")
	b.insertRequests(t, 100)
	// Four outbound workers make the batch last about 2.5 s, long enough to
	// kill it in the middle.
	w := b.startWorker(t, "TIDEMARK_QUEUES=outbound=4")
	b.waitMidBatch(t)
	w.Kill()
	killedAt := time.Now()
	const kills = 1
	c, err := b.store.OrderStatusCounts(context.Background())
	require.NoError(t, err)
	require.Less(t, c[order.Applied], int64(100), "the kill came too late to be mid-batch")
	require.Positive(t, c[order.Sending], "some rows were in flight when the worker died")

	b.startWorker(t, "TIDEMARK_QUEUES=outbound=4")
	s := b.requireAllApplied(t, 100, 150*time.Second)
	t.Logf("all APPLIED %s after the SIGKILL", time.Since(killedAt).Round(time.Second))
	require.LessOrEqual(t, s.Posts, int64(100+kills))
	b.requireAgreement(t)
	require.Positive(t, b.rescuedJobs(t), "River's rescuer handed back the dead worker's jobs")
}

// rescuedJobs counts order_submit attempts handed back by River's rescuer.
func (b *orderBundle) rescuedJobs(t *testing.T) int {
	t.Helper()
	res, err := b.client.JobList(context.Background(), river.NewJobListParams().Kinds("order_submit").First(10000))
	require.NoError(t, err)
	n := 0
	for _, j := range res.Jobs {
		for _, e := range j.Errors {
			if strings.Contains(e.Error, "Stuck job rescued") {
				n++
			}
		}
	}
	return n
}

// The outbox: each row is inserted with its job, in input order; a batch
// with a user-month that exists, a repeated one or an invalid input inserts
// nothing at all.
func TestCreateOrderRequests(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	ctx := context.Background()
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second},
		jobs.Deps{Store: st, TZ: time.UTC, Logger: testkit.Logger(t)})
	require.NoError(t, err)
	in := []order.Request{
		{Username: "b", TotalPrice: 2, AppliedYearMonth: "2025-02"},
		{Username: "a", TotalPrice: 1, AppliedYearMonth: "2025-02"},
		{Username: "a", TotalPrice: 3, AppliedYearMonth: "2025-03"},
	}
	created, err := jobs.CreateOrderRequests(ctx, client, st, in)
	require.NoError(t, err)
	require.Len(t, created, 3)
	for i, c := range created {
		row, err := st.GetOrderRequest(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, in[i].Username, row.Username)
		require.Equal(t, in[i].TotalPrice, row.TotalPrice)
		require.Equal(t, order.Pending, row.Status)
		job, err := client.JobGet(ctx, c.JobID)
		require.NoError(t, err)
		require.Equal(t, "order_submit", job.Kind)
		require.Equal(t, "outbound", job.Queue)
		require.JSONEq(t, fmt.Sprintf(`{"order_request_id":%d}`, c.ID), string(job.EncodedArgs))
	}

	total := func() (rows, jobCount int64) {
		c, err := st.OrderStatusCounts(ctx)
		require.NoError(t, err)
		kc, err := st.JobCounts(ctx)
		require.NoError(t, err)
		for _, k := range kc {
			jobCount += k.Count
		}
		return c[order.Pending], jobCount
	}
	var dup *store.DuplicateOrderRequestError
	_, err = jobs.CreateOrderRequests(ctx, client, st, []order.Request{
		{Username: "c", TotalPrice: 1, AppliedYearMonth: "2025-02"},
		{Username: "a", TotalPrice: 9, AppliedYearMonth: "2025-03"},
	})
	require.ErrorAs(t, err, &dup)
	require.Equal(t, 1, dup.Index)
	require.Equal(t, created[2].ID, dup.ExistingID)

	_, err = jobs.CreateOrderRequests(ctx, client, st, []order.Request{
		{Username: "d", TotalPrice: 1, AppliedYearMonth: "2025-02"},
		{Username: "d", TotalPrice: 2, AppliedYearMonth: "2025-02"},
	})
	require.ErrorAs(t, err, &dup)
	require.Equal(t, -1, dup.Index)

	var ie *order.InputError
	_, err = jobs.CreateOrderRequests(ctx, client, st, []order.Request{
		{Username: "e", TotalPrice: 1, AppliedYearMonth: "2025-02"},
		{Username: "f", TotalPrice: 0, AppliedYearMonth: "2025-02"},
	})
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "total_price", ie.Field)
	require.ErrorContains(t, err, "request 2")

	rows, jobCount := total()
	require.Equal(t, int64(3), rows)
	require.Equal(t, int64(3), jobCount)
}

// Of two workers, one is SIGKILLed mid-batch and not restarted: River's
// rescuer in the survivor hands back the dead one's jobs and the survivor
// finishes the batch.
func TestOrderSubmit_SurvivorReclaims(t *testing.T) {
	t.Parallel()
	b := setupOrders(t, "--latency", "100ms")
	b.insertRequests(t, 100)
	victim := b.startWorker(t, "TIDEMARK_QUEUES=outbound=4")
	b.startWorker(t, "TIDEMARK_QUEUES=outbound=4")
	b.waitMidBatch(t)
	victim.Kill()
	killedAt := time.Now()

	s := b.requireAllApplied(t, 100, 150*time.Second)
	t.Logf("all APPLIED %s after the SIGKILL", time.Since(killedAt).Round(time.Second))
	require.LessOrEqual(t, s.Posts, int64(101))
	b.requireAgreement(t)
	require.Positive(t, b.rescuedJobs(t), "River's rescuer handed back the dead worker's jobs")
}

// order_submit through rivertest, against the simulated partner in-process.
func TestOrderSubmitWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// A first attempt: SENDING, one POST, APPLIED with the partner's id.
	t.Run("SendsAndApplies", func(t *testing.T) {
		t.Parallel()
		var p partner
		b := jobs.SetupWorker(t, jobs.NewOrderSubmitWorker, p.inProcess(t))
		id := insertRows(t, b.Store, 1)[0]

		b.Work(t, jobs.OrderSubmitArgs{OrderRequestID: id}, river.EventKindJobCompleted)
		row, err := b.Store.GetOrderRequest(ctx, id)
		require.NoError(t, err)
		require.Equal(t, order.Applied, row.Status)
		require.NotNil(t, row.ExternalOrderID)
		s := p.stats(t)
		require.Equal(t, int64(1), s.Posts)
		require.Equal(t, int64(1), s.Orders)
	})

	// The path a lost completion takes: the row was APPLIED by an attempt
	// whose job was never marked completed, so the job runs again. Its claim
	// finds the row APPLIED and the job ends without calling the partner.
	t.Run("RerunOfAnAppliedRowCallsNothing", func(t *testing.T) {
		t.Parallel()
		var p partner
		b := jobs.SetupWorker(t, jobs.NewOrderSubmitWorker, p.inProcess(t))
		id := insertRows(t, b.Store, 1)[0]
		_, err := b.Store.ClaimOrderRequests(ctx, []int64{id})
		require.NoError(t, err)
		require.NoError(t, b.Store.ApplyOrders(ctx, []store.AppliedOrder{{ID: id, ExternalOrderID: 77, ExternalCreatedAt: time.Now()}}))

		b.Work(t, jobs.OrderSubmitArgs{OrderRequestID: id}, river.EventKindJobCompleted)
		row, err := b.Store.GetOrderRequest(ctx, id)
		require.NoError(t, err)
		require.Equal(t, order.Applied, row.Status)
		require.Equal(t, int64(77), *row.ExternalOrderID, "the row keeps its order")
		s := p.stats(t)
		require.Zero(t, s.Posts+s.Gets, "no call to the partner")
	})
}

// A partner that cannot be reached is recorded on the row and in the job's
// error with its host, but without the credentials of ORDER_API_URL or the
// call's query values.
func TestOrderSubmitErrorsHideThePartnerURLsSecrets(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	b := jobs.SetupWorker(t, jobs.NewOrderSubmitWorker, func(d *jobs.Deps) {
		d.OrderAPI = orderapi.New("http://order:S3cretPW@"+closed, time.Second, 1)
	})
	id := insertRows(t, b.Store, 1)[0]
	_, err = b.Store.ClaimOrderRequests(context.Background(), []int64{id}) // SENDING: the retry looks up first
	require.NoError(t, err)

	res, err := b.Worker.Work(t.Context(), t, b.Tx, jobs.OrderSubmitArgs{OrderRequestID: id}, nil)
	require.Error(t, err)
	require.Equal(t, river.EventKindJobFailed, res.EventKind)
	row, err := b.Store.GetOrderRequest(context.Background(), id)
	require.NoError(t, err)
	require.NotNil(t, row.LastError)
	want := `Get "http://order:xxxxx@` + closed + `/orders?appliedYearMonth=xxxxx&username=xxxxx"`
	require.Contains(t, *row.LastError, want)
	require.Contains(t, res.Job.Errors[0].Error, want)
	require.NotContains(t, *row.LastError+res.Job.Errors[0].Error, "S3cret")
}

func TestOrderReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// setup runs the simulated partner in-process on the test's database.
	setup := func(t *testing.T) (*jobs.WorkerBundle[jobs.OrderReconcileArgs], *orderapi.Client) {
		t.Helper()
		var p partner
		return jobs.SetupWorker(t, jobs.NewOrderReconcileWorker, p.inProcess(t)), p.api
	}

	// Every state a row can be in against the partner, checked in a dry run
	// (nothing changes), then for real (the SENDING row whose order exists is
	// repaired, nothing else touched), then through the job, which records
	// the report as its output.
	t.Run("ReportsEveryMismatchAndRepairsLostOutcomes", func(t *testing.T) {
		t.Parallel()
		b, api := setup(t)
		ids := insertRows(t, b.Store, 7)
		id := func(i int) int64 { return ids[i-1] }
		claim := func(i int) {
			_, err := b.Store.ClaimOrderRequests(ctx, []int64{id(i)})
			require.NoError(t, err)
		}
		post := func(username string, price int64) orderapi.Order {
			o, err := api.Create(ctx, orderapi.OrderRequest{Username: username, TotalPrice: price, AppliedYearMonth: "2025-02"})
			require.NoError(t, err)
			return o
		}
		apply := func(i int, extID int64) {
			require.NoError(t, b.Store.InTx(ctx, func(tx pgx.Tx) error {
				ok, err := b.Store.MarkOrderAppliedTx(ctx, tx, id(i), extID, time.Now())
				require.True(t, ok)
				return err
			}))
		}
		claim(1)
		lost := post("user001", 1000) // 1: SENDING, order exists, attempt long dead → repaired
		_, err := b.Pool.Exec(ctx, `UPDATE order_request SET updated_at = now() - interval '2 minutes' WHERE id = $1`, id(1))
		require.NoError(t, err)
		claim(2)
		apply(2, post("user002", 2000).ID) // 2: APPLIED, matches
		claim(3)                           // 3: SENDING, no order → unsent
		// 4: PENDING, no order → unsent
		claim(5)
		apply(5, 999999)      // 5: APPLIED, no order there → applied missing
		post("user006", 6000) // 6: PENDING, order exists → unexpected
		claim(7)
		apply(7, post("user007", 1).ID) // 7: APPLIED, order with another price
		post("stranger", 1)             // an order we have no row for

		want := jobs.OrderReconcileReport{DryRun: true, Rows: 7, ThirdPartyOrders: 5, Matched: 1,
			Repaired: []int64{id(1)}, AppliedMissing: []int64{id(5)}, IDMismatch: []int64{},
			PriceMismatch: []int64{id(7)}, UnexpectedOrder: []int64{id(6)}, Unsent: 2, UnknownOrders: 1}
		rep, err := jobs.CheckOrders(ctx, b.Deps, true)
		require.NoError(t, err)
		require.Equal(t, want, rep)
		require.False(t, rep.OK())
		row, err := b.Store.GetOrderRequest(ctx, id(1))
		require.NoError(t, err)
		require.Equal(t, order.Sending, row.Status, "a dry run changes nothing")

		want.DryRun = false
		rep, err = jobs.CheckOrders(ctx, b.Deps, false)
		require.NoError(t, err)
		require.Equal(t, want, rep)
		row, err = b.Store.GetOrderRequest(ctx, id(1))
		require.NoError(t, err)
		require.Equal(t, order.Applied, row.Status)
		require.Equal(t, lost.ID, *row.ExternalOrderID)
		require.True(t, lost.CreatedAt.Equal(*row.ExternalCreatedAt))

		// Through the job: nothing left to repair, and the report is its output.
		res := b.Work(t, jobs.OrderReconcileArgs{}, river.EventKindJobCompleted)
		out := jobs.OutputOf[jobs.OrderReconcileReport](t, res.Job)
		require.Equal(t, 2, out.Matched)
		require.Empty(t, out.Repaired)
		require.Equal(t, []int64{id(5)}, out.AppliedMissing)
	})

	// A row claimed moments ago whose order exists is an attempt still
	// running, not a lost outcome: left to its own apply, and not reported.
	t.Run("LeavesAnAttemptInFlight", func(t *testing.T) {
		t.Parallel()
		b, api := setup(t)
		ids := insertRows(t, b.Store, 1)
		_, err := b.Store.ClaimOrderRequests(ctx, ids)
		require.NoError(t, err)
		_, err = api.Create(ctx, orderapi.OrderRequest{Username: "user001", TotalPrice: 1000, AppliedYearMonth: "2025-02"})
		require.NoError(t, err)
		rep, err := jobs.CheckOrders(ctx, b.Deps, false)
		require.NoError(t, err)
		require.True(t, rep.OK(), "%s", rep)
		require.Empty(t, rep.Repaired)
		require.Equal(t, 1, rep.Unsent)
		row, err := b.Store.GetOrderRequest(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, order.Sending, row.Status)
	})

	// With the partner unreachable the check fails and River retries it; no
	// row changes on a guess.
	t.Run("PartnerDownRetries", func(t *testing.T) {
		t.Parallel()
		b := jobs.SetupWorker(t, jobs.NewOrderReconcileWorker, func(d *jobs.Deps) {
			d.OrderAPI = orderapi.New("http://127.0.0.1:1", time.Second, 1)
		})
		ids := insertRows(t, b.Store, 1)
		_, err := b.Store.ClaimOrderRequests(ctx, ids)
		require.NoError(t, err)

		res, err := b.Worker.Work(ctx, t, b.Tx, jobs.OrderReconcileArgs{}, nil)
		require.ErrorContains(t, err, "order_reconcile:")
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.Nil(t, res.Job.FinalizedAt, "to be retried")
		row, err := b.Store.GetOrderRequest(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, order.Sending, row.Status)
	})
}
