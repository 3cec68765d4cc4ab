package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/store"
)

// Every state a row can be in against the third party, checked in a dry run
// (nothing changes) and then for real (the SENDING row whose order exists is
// repaired, nothing else touched), and through the job, which records the
// report as its output.
func TestCheckOrders(t *testing.T) {
	t.Parallel()
	b := setupOrders(t)
	ctx := context.Background()
	created := b.insertRequests(t, 7)
	id := func(i int) int64 { return created[i-1].ID }
	claim := func(i int) store.OrderRequest {
		row, _, err := b.store.ClaimOrderRequest(ctx, id(i))
		require.NoError(t, err)
		return row
	}
	post := func(username string, price int64) orderapi.Order {
		o, err := b.api.Create(ctx, orderapi.OrderRequest{Username: username, TotalPrice: price, AppliedYearMonth: "2025-02"})
		require.NoError(t, err)
		return o
	}
	apply := func(i int, extID int64) {
		require.NoError(t, b.store.InTx(ctx, func(tx pgx.Tx) error {
			ok, err := b.store.MarkOrderAppliedTx(ctx, tx, id(i), extID, time.Now())
			require.True(t, ok)
			return err
		}))
	}
	claim(1)
	lost := post("user001", 1000) // 1: SENDING, order exists → repaired
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

	deps := jobs.Deps{Store: b.store, TZ: time.UTC, Logger: testkit.Logger(t), OrderAPI: b.api}
	want := jobs.OrderReconcileReport{DryRun: true, Rows: 7, ThirdPartyOrders: 5, Matched: 1,
		Repaired: []int64{id(1)}, AppliedMissing: []int64{id(5)}, IDMismatch: []int64{},
		PriceMismatch: []int64{id(7)}, UnexpectedOrder: []int64{id(6)}, Unsent: 2, UnknownOrders: 1}
	rep, err := jobs.CheckOrders(ctx, deps, true)
	require.NoError(t, err)
	require.Equal(t, want, rep)
	require.False(t, rep.OK())
	row, err := b.store.GetOrderRequest(ctx, id(1))
	require.NoError(t, err)
	require.Equal(t, store.OrderSending, row.Status, "a dry run changes nothing")

	want.DryRun = false
	rep, err = jobs.CheckOrders(ctx, deps, false)
	require.NoError(t, err)
	require.Equal(t, want, rep)
	row, err = b.store.GetOrderRequest(ctx, id(1))
	require.NoError(t, err)
	require.Equal(t, store.OrderApplied, row.Status)
	require.Equal(t, lost.ID, *row.ExternalOrderID)
	require.True(t, lost.CreatedAt.Equal(*row.ExternalCreatedAt))

	// Through the job: nothing left to repair, and the report is its output.
	w := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{}, jobs.NewOrderReconcileWorker(deps))
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	res, err := w.Work(ctx, t, tx, jobs.OrderReconcileArgs{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	var meta struct {
		Output jobs.OrderReconcileReport `json:"output"`
	}
	require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
	require.Equal(t, 2, meta.Output.Matched)
	require.Empty(t, meta.Output.Repaired)
	require.Equal(t, []int64{id(5)}, meta.Output.AppliedMissing)
}
