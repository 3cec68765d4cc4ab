package jobs

import "context"

// ReconcileCheck runs one reconciliation check now and returns its report.
// With dryRun it reports without repairing anything.
type ReconcileCheck func(ctx context.Context, deps Deps, dryRun bool) (any, error)

// ReconcileChecks are the checks `enqueue reconcile --check NAME` runs
// in-process, by name. Each also runs periodically as a job of its own.
var ReconcileChecks = map[string]ReconcileCheck{
	"coupon": func(ctx context.Context, deps Deps, dryRun bool) (any, error) {
		return CheckCoupons(ctx, deps, dryRun)
	},
	"therapy": func(ctx context.Context, deps Deps, dryRun bool) (any, error) {
		return VerifyTherapyStats(ctx, deps, dryRun)
	},
	"orders": func(ctx context.Context, deps Deps, dryRun bool) (any, error) {
		return CheckOrders(ctx, deps, dryRun)
	},
}
