package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/store"
)

// OrderReconcilePeriod is how often the orders are reconciled: the safety
// net for a SENDING row whose job will not find its order (discarded after
// its last retry), which nothing else would mark APPLIED.
const OrderReconcilePeriod = time.Hour

// OrderReconcileArgs compares order_request with the third party's orders
// and repairs what it safely can (see CheckOrders). Unique while one is
// queued or running; a later run is a new check.
type OrderReconcileArgs struct {
	DryRun bool `json:"dry_run" river:"unique"`
}

// Kind is order_reconcile.
func (OrderReconcileArgs) Kind() string { return "order_reconcile" }

// InsertOpts: default queue, at most one per dry_run value queued or running.
func (OrderReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueDefault,
		MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// OrderReconcileWorker runs CheckOrders and records its report as the job's
// output.
type OrderReconcileWorker struct{ worker[OrderReconcileArgs] }

// NewOrderReconcileWorker returns the worker, one check bounded inside the
// rescue window.
func NewOrderReconcileWorker(deps Deps) *OrderReconcileWorker {
	return &OrderReconcileWorker{worker[OrderReconcileArgs]{deps: deps, timeout: 55 * time.Second}}
}

// Work runs the check.
func (w *OrderReconcileWorker) Work(ctx context.Context, job *river.Job[OrderReconcileArgs]) error {
	// Loading both sides is the long part: record the orders read so far.
	prog := newProgressRecorder(job.ID, "orders", DefaultProgressEvery, 0, 0)
	report, err := checkOrders(ctx, w.deps, job.Args.DryRun, func(ours, theirs int) {
		if err := prog.record(ctx, w.deps.Store, int64(ours+theirs), map[string]int64{"ours": int64(ours), "theirs": int64(theirs)}); err != nil {
			w.deps.Logger.WarnContext(ctx, "order_reconcile: progress not recorded", "error", err)
		}
	})
	if err != nil {
		return err
	}
	return recordOutput(ctx, w.deps.Store, job.ID, report)
}

// OrderReconcileReport is what CheckOrders found and repaired. Id lists hold
// order_request ids.
type OrderReconcileReport struct {
	DryRun bool `json:"dry_run"`
	// Rows is our order_request rows; ThirdPartyOrders the orders the third
	// party holds.
	Rows             int `json:"rows"`
	ThirdPartyOrders int `json:"third_party_orders"`
	// Matched is APPLIED rows whose external id is the third party's order.
	Matched int `json:"matched"`
	// Repaired is SENDING rows whose order exists: set APPLIED with the
	// third party's id (in a dry run: would be).
	Repaired []int64 `json:"repaired"`
	// AppliedMissing is APPLIED rows with no order at the third party.
	AppliedMissing []int64 `json:"applied_missing"`
	// IDMismatch is APPLIED rows whose external id is not the third party's.
	IDMismatch []int64 `json:"id_mismatch"`
	// PriceMismatch is APPLIED rows whose order has another total price (an
	// order for that user-month placed by someone else, taken over on 409).
	PriceMismatch []int64 `json:"price_mismatch"`
	// UnexpectedOrder is PENDING or FAILED rows the third party holds an
	// order for (sent by someone else, or a 4xx that stored it anyway).
	UnexpectedOrder []int64 `json:"unexpected_order"`
	// Unsent counts PENDING and SENDING rows with no order yet: their jobs
	// will send them (or are discarded; see enqueue retry).
	Unsent int `json:"unsent"`
	// UnknownOrders counts third-party orders with no row here.
	UnknownOrders int `json:"unknown_orders"`
}

// OK reports whether the two sides agree (rows still to be sent aside).
func (r OrderReconcileReport) OK() bool {
	return len(r.AppliedMissing) == 0 && len(r.IDMismatch) == 0 && len(r.PriceMismatch) == 0 &&
		len(r.UnexpectedOrder) == 0 && r.UnknownOrders == 0
}

// String is a one-line summary.
func (r OrderReconcileReport) String() string {
	mode := "repaired"
	if r.DryRun {
		mode = "would repair"
	}
	return fmt.Sprintf("orders: %d row(s), %d third-party order(s); matched %d, %s %d SENDING row(s), applied-but-missing %d, id mismatch %d, price mismatch %d, unexpected order %d, unsent %d, unknown orders %d",
		r.Rows, r.ThirdPartyOrders, r.Matched, mode, len(r.Repaired), len(r.AppliedMissing), len(r.IDMismatch),
		len(r.PriceMismatch), len(r.UnexpectedOrder), r.Unsent, r.UnknownOrders)
}

// orderInFlight is how recently a SENDING row must have been claimed for
// its attempt to be possibly still running (its timeout, and a margin).
const orderInFlight = OrderSubmitTimeout + time.Minute

// CheckOrders compares every order_request row with the third party's
// orders (GET /orders, paged) by user and month. A SENDING row whose order
// exists, and that no attempt can still be working on (claimed longer ago
// than orderInFlight), is an attempt whose outcome was lost (a crash, a
// timeout, a job discarded after its last retry): unless dryRun it is set APPLIED with the
// third party's id and time, as the job's own lookup would have. Nothing
// else is changed; the rest is reported. It loads both sides in memory,
// which is fine up to millions of rows.
func CheckOrders(ctx context.Context, deps Deps, dryRun bool) (OrderReconcileReport, error) {
	return checkOrders(ctx, deps, dryRun, nil)
}

// checkOrders is CheckOrders, calling read, if set, after each page loaded
// with the rows of ours and the orders of theirs read so far.
func checkOrders(ctx context.Context, deps Deps, dryRun bool, read func(ours, theirs int)) (OrderReconcileReport, error) {
	if read == nil {
		read = func(int, int) {}
	}
	rep := OrderReconcileReport{DryRun: dryRun, Repaired: []int64{}, AppliedMissing: []int64{},
		IDMismatch: []int64{}, PriceMismatch: []int64{}, UnexpectedOrder: []int64{}}
	if deps.OrderAPI == nil {
		return rep, errors.New("order_reconcile: no order API configured (ORDER_API_URL)")
	}
	// Ours first: a row that turns APPLIED while we read theirs is then
	// still SENDING here and found there, and the repair's "only if still
	// SENDING" makes it a no-op.
	var rows []store.OrderRequest
	for after := int64(0); ; {
		page, err := deps.Store.OrderRequestsAfter(ctx, after, 5000)
		if err != nil {
			return rep, fmt.Errorf("order_reconcile: %w", err)
		}
		rows = append(rows, page...)
		read(len(rows), 0)
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].ID
	}
	theirs := map[string]orderapi.Order{}
	for after := int64(0); ; {
		page, err := deps.OrderAPI.List(ctx, after, 5000)
		if err != nil {
			return rep, fmt.Errorf("order_reconcile: %w", err)
		}
		for _, o := range page {
			theirs[o.Username+"\x00"+o.AppliedYearMonth] = o
		}
		read(len(rows), len(theirs))
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].ID
	}
	rep.Rows, rep.ThirdPartyOrders = len(rows), len(theirs)
	now := time.Now()
	seen := 0
	for _, r := range rows {
		o, ok := theirs[r.Username+"\x00"+r.AppliedYearMonth]
		if ok {
			seen++
		}
		switch {
		case r.Status == order.Applied && !ok:
			rep.AppliedMissing = append(rep.AppliedMissing, r.ID)
		case r.Status == order.Applied && (r.ExternalOrderID == nil || *r.ExternalOrderID != o.ID):
			rep.IDMismatch = append(rep.IDMismatch, r.ID)
		case r.Status == order.Applied && o.TotalPrice != r.TotalPrice:
			rep.PriceMismatch = append(rep.PriceMismatch, r.ID)
		case r.Status == order.Applied:
			rep.Matched++
		case r.Status == order.Sending && now.Sub(r.UpdatedAt) < orderInFlight:
			rep.Unsent++ // an attempt may still be running: its own apply settles it
		case r.Status == order.Sending && ok:
			repaired := true
			if !dryRun {
				err := fenced(ctx, deps.Store, func(tx pgx.Tx) (err error) {
					repaired, err = deps.Store.MarkOrderAppliedTx(ctx, tx, r.ID, o.ID, o.CreatedAt)
					return err
				})
				if err != nil {
					return rep, fmt.Errorf("order_reconcile: repair %d: %w", r.ID, err)
				}
			}
			if repaired { // false: settled by its own attempt meanwhile
				rep.Repaired = append(rep.Repaired, r.ID)
			}
		case ok: // PENDING or FAILED when we read it
			// A PENDING row may have been claimed and sent while we read the
			// partner's orders: only a row still unsent is unexpected.
			now, err := deps.Store.GetOrderRequest(ctx, r.ID)
			if err != nil {
				return rep, fmt.Errorf("order_reconcile: re-read %d: %w", r.ID, err)
			}
			if now.Status == r.Status {
				rep.UnexpectedOrder = append(rep.UnexpectedOrder, r.ID)
			}
		default: // PENDING or SENDING, no order
			if r.Status != order.Failed {
				rep.Unsent++
			}
		}
	}
	rep.UnknownOrders = len(theirs) - seen
	deps.Logger.InfoContext(ctx, "order_reconcile: done", "report", rep.String())
	return rep, nil
}
