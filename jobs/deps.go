package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/partnerbudget"
	"github.com/tidemark/tidemark/store"
)

// Deps is what workers need from outside: the store and the business time
// zone, built once in cmd/.
type Deps struct {
	Store  *store.Store
	TZ     *time.Location
	Logger *slog.Logger
	// Gate is the Redis coupon gate. Coupon jobs fail (and are retried) while
	// it is nil; the other kinds do not need it.
	Gate *coupongate.Gate
	// River inserts follow-up jobs from code run outside a job (the reconcile
	// checks run by the CLI). Inside a job the job's own client is used.
	River *Client
	// ReconcileGrace is how long the coupon reconciliation waits before
	// re-checking members found only in Redis (COUPON_RECONCILE_GRACE;
	// DefaultReconcileGrace when 0).
	ReconcileGrace time.Duration
	// OrderAPI is the third-party order API (ORDER_API_URL); order jobs
	// retry until it is set.
	OrderAPI OrderAPI
	// PartnerBudget is the call budget toward the order partner shared by
	// every process (ORDER_API_RATE, ORDER_API_CONCURRENCY); nil limits
	// nothing.
	PartnerBudget *partnerbudget.Budget
	// AuditRetention is how long the job archive keeps a finished job
	// (AUDIT_RETENTION; DefaultAuditRetention when 0).
	AuditRetention time.Duration
	// StaleAttempt, if set, counts an attempt that found a later attempt
	// owning its job and ended without writing (see fence.go).
	StaleAttempt func(kind string)
}

// OrderAPI is what the order jobs need from the third-party order API
// (*orderapi.Client provides it).
type OrderAPI interface {
	Create(ctx context.Context, req orderapi.OrderRequest) (orderapi.Order, error)
	Lookup(ctx context.Context, username, yearMonth string) (orderapi.Order, error)
	List(ctx context.Context, afterID int64, limit int) ([]orderapi.Order, error)
}
