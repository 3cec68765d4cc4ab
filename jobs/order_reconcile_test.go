package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
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
	"github.com/tidemark/tidemark/thirdparty"
)

func TestOrderReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		api   *orderapi.Client
		deps  jobs.Deps
		store *store.Store
		tx    pgx.Tx
	}

	// setup runs the simulated partner in-process on the test's database.
	setup := func(t *testing.T) (*rivertest.Worker[jobs.OrderReconcileArgs, pgx.Tx], *testBundle) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		logger := testkit.Logger(t)
		partner, err := thirdparty.New(ctx, pool, thirdparty.Faults{}, logger)
		require.NoError(t, err)
		srv := httptest.NewServer(partner.Handler())
		t.Cleanup(func() { partner.Close(); srv.Close() })
		api := orderapi.New(srv.URL, 5*time.Second, 4)
		deps := jobs.Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: logger, OrderAPI: api}
		w, tx := testkit.NewWorker(t, pool, jobs.NewOrderReconcileWorker(deps))
		return w, &testBundle{api: api, deps: deps, store: deps.Store, tx: tx}
	}

	// rows inserts n PENDING requests user001…, month 2025-02.
	rows := func(t *testing.T, b *testBundle, n int) []int64 {
		t.Helper()
		in := make([]store.OrderRequestInput, n)
		for i := range in {
			in[i] = store.OrderRequestInput{Username: fmt.Sprintf("user%03d", i+1), TotalPrice: int64(1000 * (i + 1)), AppliedYearMonth: "2025-02"}
		}
		var ids []int64
		require.NoError(t, b.store.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			ids, err = b.store.InsertOrderRequestsTx(ctx, tx, in)
			return err
		}))
		return ids
	}

	// Every state a row can be in against the partner, checked in a dry run
	// (nothing changes), then for real (the SENDING row whose order exists is
	// repaired, nothing else touched), then through the job, which records
	// the report as its output.
	t.Run("ReportsEveryMismatchAndRepairsLostOutcomes", func(t *testing.T) {
		t.Parallel()
		w, b := setup(t)
		ids := rows(t, b, 7)
		id := func(i int) int64 { return ids[i-1] }
		claim := func(i int) {
			_, err := b.store.ClaimOrderRequests(ctx, []int64{id(i)})
			require.NoError(t, err)
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
		lost := post("user001", 1000) // 1: SENDING, order exists, attempt long dead → repaired
		_, err := b.store.Pool.Exec(ctx, `UPDATE order_request SET updated_at = now() - interval '2 minutes' WHERE id = $1`, id(1))
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
		rep, err := jobs.CheckOrders(ctx, b.deps, true)
		require.NoError(t, err)
		require.Equal(t, want, rep)
		require.False(t, rep.OK())
		row, err := b.store.GetOrderRequest(ctx, id(1))
		require.NoError(t, err)
		require.Equal(t, store.OrderSending, row.Status, "a dry run changes nothing")

		want.DryRun = false
		rep, err = jobs.CheckOrders(ctx, b.deps, false)
		require.NoError(t, err)
		require.Equal(t, want, rep)
		row, err = b.store.GetOrderRequest(ctx, id(1))
		require.NoError(t, err)
		require.Equal(t, store.OrderApplied, row.Status)
		require.Equal(t, lost.ID, *row.ExternalOrderID)
		require.True(t, lost.CreatedAt.Equal(*row.ExternalCreatedAt))

		// Through the job: nothing left to repair, and the report is its output.
		res, err := w.Work(ctx, t, b.tx, jobs.OrderReconcileArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var meta struct {
			Output jobs.OrderReconcileReport `json:"output"`
		}
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		require.Equal(t, 2, meta.Output.Matched)
		require.Empty(t, meta.Output.Repaired)
		require.Equal(t, []int64{id(5)}, meta.Output.AppliedMissing)
	})

	// With the partner unreachable the check fails and River retries it; no
	// row changes on a guess.
	// A row claimed moments ago whose order exists is an attempt still
	// running, not a lost outcome: left to its own apply, and not reported.
	t.Run("LeavesAnAttemptInFlight", func(t *testing.T) {
		t.Parallel()
		_, b := setup(t)
		ids := rows(t, b, 1)
		_, err := b.store.ClaimOrderRequests(ctx, ids)
		require.NoError(t, err)
		_, err = b.api.Create(ctx, orderapi.OrderRequest{Username: "user001", TotalPrice: 1000, AppliedYearMonth: "2025-02"})
		require.NoError(t, err)
		rep, err := jobs.CheckOrders(ctx, b.deps, false)
		require.NoError(t, err)
		require.True(t, rep.OK(), "%s", rep)
		require.Empty(t, rep.Repaired)
		require.Equal(t, 1, rep.Unsent)
		row, err := b.store.GetOrderRequest(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, store.OrderSending, row.Status)
	})

	t.Run("PartnerDownRetries", func(t *testing.T) {
		t.Parallel()
		_, b := setup(t)
		ids := rows(t, b, 1)
		_, err := b.store.ClaimOrderRequests(ctx, ids[:1])
		require.NoError(t, err)
		b.deps.OrderAPI = orderapi.New("http://127.0.0.1:1", time.Second, 1)
		w := rivertest.NewWorker(t, riverpgxv5.New(b.store.Pool), &river.Config{Logger: b.deps.Logger}, jobs.NewOrderReconcileWorker(b.deps))

		res, err := w.Work(ctx, t, b.tx, jobs.OrderReconcileArgs{}, nil)
		require.ErrorContains(t, err, "order_reconcile:")
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.Nil(t, res.Job.FinalizedAt, "to be retried")
		row, err := b.store.GetOrderRequest(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, store.OrderSending, row.Status)
	})
}
