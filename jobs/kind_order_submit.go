package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/internal/combine"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/partnerbudget"
	"github.com/tidemark/tidemark/store"
)

// Retry bounds of order_submit: attempt n waits min(2^(n-1) s, 5 min) ±10%,
// so a short outage is ridden out in seconds and a long one ends, after about
// 20 minutes, in a discarded job that `enqueue retry --kind order_submit`
// re-queues (the row stays PENDING or SENDING, never sent twice).
const (
	OrderSubmitMaxAttempts = 12
	orderRetryCap          = 5 * time.Minute
	// OrderSubmitTimeout bounds one attempt: a lookup and a POST (or a POST
	// and a lookup after a 409) at ORDER_CALL_TIMEOUT each (at most 20 s),
	// plus two short transactions. A dead worker's job is rescued once it
	// has run this long.
	OrderSubmitTimeout = 50 * time.Second
)

// OrderSubmitArgs sends one order_request row to the third party. It is
// unique on the row: a row has one job, inserted in the same transaction.
type OrderSubmitArgs struct {
	OrderRequestID int64 `json:"order_request_id" river:"unique"`
}

// Kind is order_submit.
func (OrderSubmitArgs) Kind() string { return "order_submit" }

// unleased: order_submit claims no lease (fence.go). It moves its row from
// status to status with compare-and-set statements and looks its order up
// before any POST, so a stale attempt changes nothing a fresh one did.
func (OrderSubmitArgs) unleased() {}

// InsertOpts puts the job on the outbound queue, unique by row.
func (OrderSubmitArgs) InsertOpts() river.InsertOpts {
	return uniqueByArgs(QueueOutbound, OrderSubmitMaxAttempts)
}

// OrderSubmitWorker runs the at-most-once protocol for one row:
//
//  1. commit SENDING (attempts+1) under the row's lock before any call;
//  2. if the row was already SENDING, an earlier attempt's outcome is
//     unknown (timeout, 500 after commit, crash): GET the order first, and
//     POST only if the third party has none;
//  3. POST; on 201 commit APPLIED + the external id and time, then return
//     nil: River completes the job (a lost completion reruns the job, whose
//     claim finds the row APPLIED and ends it without a call);
//  4. a 409 resolves through the lookup to APPLIED with the third party's id;
//     another 4xx marks the row FAILED with the reason and cancels the job;
//     5xx, timeouts and transport errors are retried with backoff.
//
// A FAILED row is final unless an operator re-queues its cancelled job
// (enqueue retry --kind order_submit --state cancelled): that attempt claims
// it like a SENDING one, looking the order up before posting again.
//
// Attempts running at the same time in one process share their database
// statements (see internal/combine): the claims of all of them are one
// UPDATE, and their APPLIED rows another. Each row's SENDING is still
// committed before its own call, and its APPLIED before its own Work
// returns; if a shared statement fails, each row is retried on its own, so
// one row's failure is its job's alone.
type OrderSubmitWorker struct {
	worker[OrderSubmitArgs]
	claims  *combine.Combiner[*orderClaimReq]
	applies *combine.Combiner[*orderApplyReq]
}

type orderClaimReq struct {
	id    int64
	claim store.OrderClaim
	found bool
}

type orderApplyReq struct {
	id    int64
	order orderapi.Order
}

// NewOrderSubmitWorker returns the worker, with its statement combiners.
// Claims and applies each run one batch at a time: the attempts that arrive
// while a batch runs form the next one, so batches grow with load. An apply
// is one statement (store.ApplyOrders) for all its rows. One apply at a time
// rather than several: fewer and larger transactions cost less CPU, and on a
// busy machine CPU is what every round trip waits for.
func NewOrderSubmitWorker(deps Deps) *OrderSubmitWorker {
	w := &OrderSubmitWorker{worker: worker[OrderSubmitArgs]{deps: deps, timeout: OrderSubmitTimeout}}
	w.claims = combine.New(1, 128, w.claimBatch)
	w.applies = combine.New(1, 64, w.applyBatch)
	return w
}

// NextRetry backs off exponentially from 1 s, capped at 5 min, with jitter.
func (w *OrderSubmitWorker) NextRetry(job *river.Job[OrderSubmitArgs]) time.Time {
	return time.Now().Add(orderRetryDelay(job.Attempt))
}

func orderRetryDelay(attempt int) time.Duration {
	d := orderRetryCap
	if attempt >= 1 && attempt <= 9 {
		d = min(time.Second<<(attempt-1), orderRetryCap)
	}
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// Work runs one attempt of the protocol. Every call to the partner first
// takes a permit from the shared budget (deps.PartnerBudget); without one
// the job snoozes, which spends no attempt, and makes no call. The first
// permit is taken before the claim, so a job turned away leaves its row
// as it was. A snooze ends an attempt only where no call of it may have
// stored an order that its row does not record: before any call, after a
// lookup, or after a 429 or 503 (the partner did nothing with the call);
// a timeout or another unknown outcome is retried as before, and the next
// attempt looks the order up first.
func (w *OrderSubmitWorker) Work(ctx context.Context, job *river.Job[OrderSubmitArgs]) error {
	id := job.Args.OrderRequestID
	budget := w.deps.PartnerBudget
	permit, err := budget.Acquire(ctx)
	if err != nil {
		return snoozeOr(err)
	}
	claim, found, err := w.claim(ctx, id)
	if err != nil {
		permit.Release(ctx)
		return err
	}
	if !found {
		permit.Release(ctx)
		return river.JobCancel(fmt.Errorf("order_submit: order request %d does not exist", id))
	}
	row, prev := claim.Row, claim.PrevStatus
	if prev == order.Applied {
		permit.Release(ctx)
		return nil // settled by an earlier attempt or by reconciliation
	}
	api := w.deps.OrderAPI
	if api == nil {
		permit.Release(ctx)
		return w.retry(ctx, id, errors.New("order_submit: no order API configured (ORDER_API_URL)"))
	}
	// SENDING: an earlier attempt's outcome is unknown. FAILED: an operator
	// re-queued a refused request (enqueue retry --state cancelled); the
	// refusal stored nothing, but looking first costs one GET. A probe of
	// the half-open breaker is a lookup too: it changes nothing at the
	// partner, so when it fails the job can snooze instead of spending an
	// attempt.
	if prev == order.Sending || prev == order.Failed || permit.Probe() {
		o, err := api.Lookup(ctx, row.Username, row.AppliedYearMonth)
		if d, wait := permit.Done(ctx, err); wait {
			return river.JobSnooze(d)
		}
		if permit.Probe() && orderapi.Failing(ctx, err) {
			return river.JobSnooze(partnerbudget.Jitter(partnerbudget.BreakerOpenFor))
		}
		switch {
		case err == nil:
			return w.apply(ctx, id, o)
		case !errors.Is(err, orderapi.ErrNotFound):
			return w.retry(ctx, id, err)
		}
		// The third party has no such order: the earlier attempt did not
		// store it, so posting now cannot make a second one. This attempt
		// has posted nothing: turned away, it snoozes.
		if permit, err = budget.Acquire(ctx); err != nil {
			return snoozeOr(err)
		}
		if permit.Probe() {
			// The breaker opened during the lookup: its probe is a lookup,
			// never a POST. Nothing was posted, so the job waits.
			permit.Release(ctx)
			return river.JobSnooze(partnerbudget.Jitter(partnerbudget.BreakerOpenFor))
		}
	}
	o, err := api.Create(ctx, orderapi.OrderRequest{
		Username: row.Username, TotalPrice: row.TotalPrice, AppliedYearMonth: row.AppliedYearMonth,
	})
	if d, wait := permit.Done(ctx, err); wait {
		// A 429 or 503: the partner stored nothing.
		return river.JobSnooze(d)
	}
	switch {
	case err == nil:
		return w.apply(ctx, id, o)
	case errors.Is(err, orderapi.ErrConflict):
		// The partner holds an order for this user-month and the row stays
		// SENDING: a job turned away here looks it up first next time.
		if permit, err = budget.Acquire(ctx); err != nil {
			return snoozeOr(err)
		}
		o, lerr := api.Lookup(ctx, row.Username, row.AppliedYearMonth)
		if d, wait := permit.Done(ctx, lerr); wait {
			return river.JobSnooze(d)
		}
		if permit.Probe() && orderapi.Failing(ctx, lerr) {
			// A failed probe: the row stays SENDING and the next attempt
			// looks up first; waiting spends no attempt.
			return river.JobSnooze(partnerbudget.Jitter(partnerbudget.BreakerOpenFor))
		}
		if lerr == nil {
			return w.apply(ctx, id, o)
		}
		return w.retry(ctx, id, fmt.Errorf("409 conflict, then lookup: %w", lerr))
	case orderapi.Permanent(err):
		// A stale attempt (its worker froze, another took the job over)
		// marks nothing on a row the live attempt is working on.
		if serr := ownsNow(ctx); serr != nil {
			return serr
		}
		if _, ferr := w.deps.Store.MarkOrderFailed(ctx, id, err.Error()); ferr != nil {
			return ferr // retried: the row is still SENDING, so the retry looks up first
		}
		return river.JobCancel(err)
	default:
		return w.retry(ctx, id, err)
	}
}

// snoozeOr turns the budget's NoBudget into a snooze; any other error (the
// attempt's context ended while it waited) is returned as it is.
func snoozeOr(err error) error {
	var nb *partnerbudget.NoBudget
	if errors.As(err, &nb) {
		return river.JobSnooze(nb.Wait)
	}
	return err
}

// claim commits row id SENDING with one more attempt, under the row's lock,
// before any call, and returns the row with the status it had before; found
// is false when no such row exists. The claims of attempts running at the
// same time are one statement (claimBatch).
func (w *OrderSubmitWorker) claim(ctx context.Context, id int64) (claim store.OrderClaim, found bool, err error) {
	r := &orderClaimReq{id: id}
	if err := w.claims.Do(ctx, r); err != nil {
		return store.OrderClaim{}, false, err
	}
	return r.claim, r.found, nil
}

// claimBatch claims the rows of reqs in one statement
// (store.ClaimOrderRequests) and hands each request its row.
func (w *OrderSubmitWorker) claimBatch(ctx context.Context, reqs []*orderClaimReq) error {
	ids := make([]int64, len(reqs))
	for i, r := range reqs {
		ids[i] = r.id
	}
	got, err := w.deps.Store.ClaimOrderRequests(ctx, ids)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		r.claim, r.found = got[r.id]
	}
	return nil
}

// apply commits row id APPLIED with the third party's order id and time;
// the job completes when Work returns nil. The applies of attempts running
// at the same time are one statement (applyBatch).
func (w *OrderSubmitWorker) apply(ctx context.Context, id int64, o orderapi.Order) error {
	return w.applies.Do(ctx, &orderApplyReq{id: id, order: o})
}

// applyBatch marks the SENDING rows of reqs APPLIED in one statement
// (store.ApplyOrders).
func (w *OrderSubmitWorker) applyBatch(ctx context.Context, reqs []*orderApplyReq) error {
	orders := make([]store.AppliedOrder, len(reqs))
	for i, r := range reqs {
		orders[i] = store.AppliedOrder{ID: r.id, ExternalOrderID: r.order.ID, ExternalCreatedAt: r.order.CreatedAt}
	}
	// The rows' jobs are completed by River once Work returns. The protocol
	// tolerates a lost completion (a crash after the commit): the job runs
	// again, its claim finds the row APPLIED, and it ends without a call. A
	// row no longer SENDING was applied by reconciliation (or an overlapping
	// attempt) with the same order.
	return w.deps.Store.ApplyOrders(ctx, orders)
}

// retry records err on the row and returns it, so River retries the job.
func (w *OrderSubmitWorker) retry(ctx context.Context, id int64, err error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ownsNow(rctx) != nil {
		return err // stale: nothing recorded on the live attempt's row
	}
	if rerr := w.deps.Store.RecordOrderError(rctx, id, err.Error()); rerr != nil {
		w.deps.Logger.WarnContext(ctx, "order_submit: could not record error", "order_request_id", id, "err", rerr)
	}
	return err
}

// CreatedOrderRequest is one row inserted with its job.
type CreatedOrderRequest struct {
	ID    int64 `json:"id"`
	JobID int64 `json:"jobId"`
}

// CreateOrderRequests inserts the requests as PENDING rows and one
// order_submit job per row in a single transaction (outbox): a row never
// exists without its job, nor a job without its row. Invalid input wraps a
// *order.InputError, an existing user-month is a
// *store.DuplicateOrderRequestError; nothing is inserted then.
func CreateOrderRequests(ctx context.Context, client *Client, st *store.Store, in []order.Request) ([]CreatedOrderRequest, error) {
	if len(in) == 0 {
		return nil, errors.New("jobs: create order requests: no requests")
	}
	for i, r := range in {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("jobs: create order requests: request %d: %w", i+1, err)
		}
	}
	var out []CreatedOrderRequest
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		ids, err := st.InsertOrderRequestsTx(ctx, tx, in)
		if err != nil {
			return err
		}
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: OrderSubmitArgs{OrderRequestID: id}}
		}
		res, err := client.InsertManyTx(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("jobs: enqueue order_submit: %w", err)
		}
		out = make([]CreatedOrderRequest, len(ids))
		for i, r := range res {
			out[i] = CreatedOrderRequest{ID: ids[i], JobID: r.Job.ID}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var _ rivertype.JobArgs = OrderSubmitArgs{}
