package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tidemark/tidemark/store"
)

// DefaultReconcileGrace is how long the coupon reconciliation waits before it
// re-checks a member found only in Redis: longer than an issue request can
// take between its Redis step and its persist job's commit (InsertTimeout,
// plus queueing), so a request still in the handler is not rolled back.
const DefaultReconcileGrace = 15 * time.Second

// ReconcilePeriod is how often every ACTIVE coupon is reconciled.
const ReconcilePeriod = 5 * time.Minute

// CouponReconcileAllArgs is the periodic fan-out: one coupon_reconcile job
// per ACTIVE coupon. Unique per 5-minute period.
type CouponReconcileAllArgs struct{}

// Kind is coupon_reconcile_all.
func (CouponReconcileAllArgs) Kind() string { return "coupon_reconcile_all" }

// InsertOpts makes the fan-out unique per period.
func (CouponReconcileAllArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByPeriod: ReconcilePeriod}}
}

// CouponReconcileAllWorker fans out.
type CouponReconcileAllWorker struct{ worker[CouponReconcileAllArgs] }

// NewCouponReconcileAllWorker returns the worker that fans out one reconciliation per active coupon.
func NewCouponReconcileAllWorker(deps Deps) *CouponReconcileAllWorker {
	return &CouponReconcileAllWorker{worker[CouponReconcileAllArgs]{deps: deps, timeout: 30 * time.Second}}
}

// Work inserts one coupon_reconcile per ACTIVE coupon; the unique key skips
// coupons already reconciled (or queued) in this period.
func (w *CouponReconcileAllWorker) Work(ctx context.Context, job *river.Job[CouponReconcileAllArgs]) error {
	codes, err := w.deps.Store.ActiveCouponCodes(ctx)
	if err != nil {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	params := make([]river.InsertManyParams, len(codes))
	for i, c := range codes {
		params[i] = river.InsertManyParams{Args: CouponReconcileArgs{CouponCode: c}}
	}
	inserted := 0
	if len(params) > 0 {
		res, err := client.InsertMany(ctx, params)
		if err != nil {
			return fmt.Errorf("coupon_reconcile_all: insert: %w", err)
		}
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				inserted++
			}
		}
	}
	return recordOutput(ctx, w.deps.Store, job.ID, map[string]int{"active_coupons": len(codes), "inserted": inserted})
}

// CouponReconcileArgs reconciles one coupon's gate with Postgres. Unique per
// coupon per 5-minute period.
type CouponReconcileArgs struct {
	CouponCode string `json:"coupon_code" river:"unique"`
	DryRun     bool   `json:"dry_run,omitempty" river:"unique"`
}

// Kind is coupon_reconcile.
func (CouponReconcileArgs) Kind() string { return "coupon_reconcile" }

// InsertOpts makes the job unique per coupon (and dry-run flag) per period.
func (CouponReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: ReconcilePeriod}}
}

// CouponReconcileWorker runs ReconcileCoupon and records its report.
type CouponReconcileWorker struct{ worker[CouponReconcileArgs] }

// NewCouponReconcileWorker returns the coupon reconciliation worker. One
// reconciliation is bounded by its grace (it waits that long before
// re-checking members found only in Redis) and 45 s for the reads and
// repairs around it.
func NewCouponReconcileWorker(deps Deps) *CouponReconcileWorker {
	return &CouponReconcileWorker{worker[CouponReconcileArgs]{deps: deps, timeout: reconcileGrace(deps) + 45*time.Second}}
}

func reconcileGrace(deps Deps) time.Duration {
	if deps.ReconcileGrace == 0 {
		return DefaultReconcileGrace
	}
	return deps.ReconcileGrace
}

// Work reconciles the coupon.
func (w *CouponReconcileWorker) Work(ctx context.Context, job *river.Job[CouponReconcileArgs]) error {
	rep, err := ReconcileCoupon(ctx, w.deps, job.Args.CouponCode, job.Args.DryRun)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	return recordOutput(ctx, w.deps.Store, job.ID, rep)
}

// CouponReport is what reconciling one coupon found and did. Member lists
// are capped at 100 ids; the counts are exact.
type CouponReport struct {
	Code   string `json:"code"`
	DryRun bool   `json:"dry_run"`
	// RedisLoaded is false when the coupon's stock key was missing (Redis
	// lost its data, or the coupon was never loaded).
	RedisLoaded  bool `json:"redis_loaded"`
	RedisMembers int  `json:"redis_members"`
	DBMembers    int  `json:"db_members"`
	InFlight     int  `json:"in_flight"`
	// RolledBack: only in Redis, persist job finished or absent → removed
	// from Redis, seat restored, recorded in failed_coupon_issue.
	RolledBack      int     `json:"rolled_back"`
	RolledBackIDs   []int64 `json:"rolled_back_ids,omitempty"`
	KeptInFlight    int     `json:"kept_in_flight"`
	KeptInFlightIDs []int64 `json:"kept_in_flight_ids,omitempty"`
	// AddedBack: in Postgres (or in an unfinished persist job) but not in
	// Redis → added to the issued set.
	AddedBack     int     `json:"added_back"`
	AddedBackIDs  []int64 `json:"added_back_ids,omitempty"`
	StockBefore   *int64  `json:"stock_before"`
	StockAfter    *int64  `json:"stock_after"`
	IssuedQtyWas  int     `json:"issued_quantity_before"`
	IssuedQtyNow  int     `json:"issued_quantity_after"`
	TotalQuantity int     `json:"total_quantity"`
	// Agrees: Redis and Postgres hold the same seats. coupon.issued_quantity
	// is a counter only the reconciliation brings up to date, so its sync
	// (IssuedQty*) is upkeep, not a disagreement.
	Agrees bool `json:"agrees"`
}

// CouponsReport is the coupon check over every ACTIVE coupon.
type CouponsReport struct {
	DryRun  bool           `json:"dry_run"`
	Coupons []CouponReport `json:"coupons"`
}

// CheckCoupons reconciles every ACTIVE coupon now (the `enqueue reconcile
// --check coupon` command).
func CheckCoupons(ctx context.Context, deps Deps, dryRun bool) (CouponsReport, error) {
	rep := CouponsReport{DryRun: dryRun, Coupons: []CouponReport{}}
	codes, err := deps.Store.ActiveCouponCodes(ctx)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, code := range codes {
		r, err := ReconcileCoupon(ctx, deps, code, dryRun)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Coupons = append(rep.Coupons, r)
	}
	return rep, errors.Join(errs...)
}

// ReconcileCoupon compares code's gate with Postgres and repairs it (the
// third safety layer), unless dryRun:
//
//  1. A member only in Redis whose persist job is still unfinished (available,
//     pending, running, retryable, scheduled) is in flight and left alone. The
//     others are re-checked after a grace period (deps.ReconcileGrace), which
//     covers a request between its Redis step and its job insert; those still
//     only in Redis are removed, their seats restored, and recorded in
//     failed_coupon_issue.
//  2. A member in Postgres or in an unfinished persist job but not in Redis
//     (Redis lost it) is added back.
//  3. The stock is set to total - |issued set| atomically, and
//     issued_quantity to Postgres' COUNT(*).
//
// The order of reads matters: Redis, then unfinished jobs, then Postgres (the
// last two are store.CouponSeats). A persist job commits its row before River
// marks it completed, so a job seen finished has its row visible to the later
// Postgres read.
func ReconcileCoupon(ctx context.Context, deps Deps, code string, dryRun bool) (CouponReport, error) {
	rep := CouponReport{Code: code, DryRun: dryRun}
	if deps.Gate == nil {
		return rep, errors.New("jobs: reconcile: no coupon gate configured (REDIS_URL)")
	}
	c, err := deps.Store.CouponByCode(ctx, code)
	if err != nil {
		return rep, fmt.Errorf("jobs: reconcile %s: %w", code, err)
	}
	rep.TotalQuantity = c.TotalQuantity
	gs, err := deps.Gate.State(ctx, code)
	if err != nil {
		return rep, err
	}
	seats, err := deps.Store.CouponSeats(ctx, c)
	if err != nil {
		return rep, err
	}
	inFlight, db := seats.InFlight, seats.Issued
	rep.RedisLoaded, rep.RedisMembers, rep.DBMembers, rep.InFlight = gs.Loaded, len(gs.Members), len(db), len(inFlight)
	if gs.Loaded {
		rep.StockBefore = ptr(gs.Stock)
	}
	redisSet, dbSet, flightSet := toSet(gs.Members), toSet(db), toSet(inFlight)

	var candidates, kept []int64
	for _, m := range gs.Members {
		switch {
		case dbSet[m]:
		case flightSet[m]:
			kept = append(kept, m)
		default:
			candidates = append(candidates, m)
		}
	}
	var addBack []int64
	for _, m := range append(slices.Clone(db), inFlight...) {
		if !redisSet[m] {
			addBack = append(addBack, m)
			redisSet[m] = true
		}
	}

	if len(candidates) > 0 && !dryRun {
		if candidates, kept, err = recheckCandidates(ctx, deps, c, candidates, kept); err != nil {
			return rep, err
		}
	}
	slices.Sort(candidates)
	slices.Sort(kept)
	slices.Sort(addBack)
	rep.RolledBack, rep.RolledBackIDs = len(candidates), capIDs(candidates)
	rep.KeptInFlight, rep.KeptInFlightIDs = len(kept), capIDs(kept)
	rep.AddedBack, rep.AddedBackIDs = len(addBack), capIDs(addBack)

	if dryRun {
		after := int64(c.TotalQuantity) - int64(len(gs.Members)+len(addBack)-len(candidates))
		rep.StockAfter = &after
		rep.IssuedQtyWas, rep.IssuedQtyNow, err = deps.Store.SyncIssuedQuantity(ctx, c.ID, true)
		rep.Agrees = len(candidates) == 0 && len(addBack) == 0 && gs.Loaded && rep.StockBefore != nil && *rep.StockBefore == after
		return rep, err
	}

	// Inside a job, a stale attempt (its worker froze, another took the job
	// over) repairs nothing from its old reading.
	if err := ownsNow(ctx); err != nil {
		return rep, err
	}
	for _, m := range candidates {
		reason := "reconcile: issued in Redis only; no unfinished persist job and no coupon_issue row"
		if _, err := CompensateIssue(ctx, deps, code, m, reason); err != nil {
			return rep, err
		}
	}
	stock, err := deps.Gate.Load(ctx, code, int64(c.TotalQuantity), addBack)
	if err != nil {
		return rep, err
	}
	rep.StockAfter = &stock
	if rep.IssuedQtyWas, rep.IssuedQtyNow, err = deps.Store.SyncIssuedQuantity(ctx, c.ID, false); err != nil {
		return rep, err
	}
	rep.Agrees = len(candidates) == 0 && len(addBack) == 0 && gs.Loaded && *rep.StockBefore == stock
	deps.Logger.InfoContext(ctx, "coupon reconciled", "coupon", code, "rolled_back", rep.RolledBack,
		"kept_in_flight", rep.KeptInFlight, "added_back", rep.AddedBack, "stock", stock, "issued_quantity", rep.IssuedQtyNow)
	return rep, nil
}

// CreateCoupon creates the coupon nc and loads its gate in Redis (stock =
// total), as `enqueue coupon create` does once it has reached Redis: a
// coupon must not exist in Postgres that the gate cannot serve. A code
// already taken changes nothing; a gate that failed to load after the
// coupon was created is an error naming the command that loads it.
func CreateCoupon(ctx context.Context, deps Deps, nc store.NewCoupon) (c store.Coupon, stock int64, err error) {
	c, err = deps.Store.CreateCoupon(ctx, nc)
	if errors.Is(err, store.ErrDuplicate) {
		return c, 0, fmt.Errorf("coupon %s already exists; nothing changed", nc.Code)
	}
	if err != nil {
		return c, 0, err
	}
	if stock, err = RebuildCouponGate(ctx, deps, c); err != nil {
		return c, 0, fmt.Errorf("coupon %s created (id %d) but loading Redis failed: %w; run enqueue coupon load-redis --code %s", c.Code, c.ID, err, c.Code)
	}
	return c, stock, nil
}

// RebuildCouponGate (re)builds c's gate from Postgres by the rule the
// reconciliation repairs it with: every member holding a seat (a coupon_issue
// row or an unfinished persist job) is added to the issued set, and the stock
// is set to total - |issued|. Members already in the set stay, so an issue
// racing the rebuild is kept. An INACTIVE coupon's keys are removed instead
// (stock 0). It returns the stock.
func RebuildCouponGate(ctx context.Context, deps Deps, c store.Coupon) (int64, error) {
	if deps.Gate == nil {
		return 0, errors.New("jobs: rebuild coupon gate: no coupon gate configured (REDIS_URL)")
	}
	if c.Status != store.CouponActive {
		return 0, deps.Gate.Unload(ctx, c.Code)
	}
	seats, err := deps.Store.CouponSeats(ctx, c)
	if err != nil {
		return 0, err
	}
	return deps.Gate.Load(ctx, c.Code, int64(c.TotalQuantity), seats.Holders())
}

// recheckCandidates waits out the grace period, then keeps as candidates only
// members still in Redis, still without a row and without an unfinished job.
func recheckCandidates(ctx context.Context, deps Deps, c store.Coupon, candidates, kept []int64) ([]int64, []int64, error) {
	grace := reconcileGrace(deps)
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(grace):
	}
	gs, err := deps.Gate.State(ctx, c.Code)
	if err != nil {
		return nil, nil, err
	}
	seats, err := deps.Store.CouponSeats(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	redisSet, dbSet, flightSet := toSet(gs.Members), toSet(seats.Issued), toSet(seats.InFlight)
	var still []int64
	for _, m := range candidates {
		switch {
		case !redisSet[m] || dbSet[m]:
		case flightSet[m]:
			kept = append(kept, m)
		default:
			still = append(still, m)
		}
	}
	return still, kept, nil
}

func toSet(ids []int64) map[int64]bool {
	s := make(map[int64]bool, len(ids))
	for _, id := range ids {
		s[id] = true
	}
	return s
}

func capIDs(ids []int64) []int64 {
	if len(ids) > 100 {
		return ids[:100]
	}
	return ids
}

func ptr[T any](v T) *T { return &v }
