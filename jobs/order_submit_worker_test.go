package jobs_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/store"
	"github.com/tidemark/tidemark/thirdparty"
)

// order_submit through rivertest, against the simulated partner in-process.
func TestOrderSubmitWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		partner string // the partner's URL
		store   *store.Store
	}

	setup := func(t *testing.T) (*testBundle, jobs.Deps) {
		t.Helper()
		pool, _ := testkit.Pool(t)
		partner, err := thirdparty.New(ctx, pool, thirdparty.Faults{}, testkit.Logger(t))
		require.NoError(t, err)
		srv := httptest.NewServer(partner.Handler())
		t.Cleanup(func() { partner.Close(); srv.Close() })
		deps := jobs.Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t),
			OrderAPI: orderapi.New(srv.URL, 5*time.Second, 4)}
		return &testBundle{partner: srv.URL, store: deps.Store}, deps
	}

	stats := func(t *testing.T, b *testBundle) thirdparty.Stats {
		t.Helper()
		resp, err := http.Get(b.partner + "/_stats")
		require.NoError(t, err)
		defer resp.Body.Close()
		var s thirdparty.Stats
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
		return s
	}

	request := func(t *testing.T, b *testBundle) int64 {
		t.Helper()
		var ids []int64
		require.NoError(t, b.store.InTx(ctx, func(tx pgx.Tx) (err error) {
			ids, err = b.store.InsertOrderRequestsTx(ctx, tx, []store.OrderRequestInput{
				{Username: "alice", TotalPrice: 10000, AppliedYearMonth: "2025-02"}})
			return err
		}))
		return ids[0]
	}

	// A first attempt: SENDING, one POST, APPLIED with the partner's id.
	t.Run("SendsAndApplies", func(t *testing.T) {
		t.Parallel()
		b, deps := setup(t)
		id := request(t, b)
		w, tx := testkit.NewWorker(t, b.store.Pool, jobs.NewOrderSubmitWorker(deps))
		res, err := w.Work(ctx, t, tx, jobs.OrderSubmitArgs{OrderRequestID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		row, err := b.store.GetOrderRequest(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.OrderApplied, row.Status)
		require.NotNil(t, row.ExternalOrderID)
		s := stats(t, b)
		require.Equal(t, int64(1), s.Posts)
		require.Equal(t, int64(1), s.Orders)
	})

	// The path a lost completion takes: the row was APPLIED by an attempt
	// whose job was never marked completed, so the job runs again. Its claim
	// finds the row APPLIED and the job ends without calling the partner.
	t.Run("RerunOfAnAppliedRowCallsNothing", func(t *testing.T) {
		t.Parallel()
		b, deps := setup(t)
		id := request(t, b)
		_, err := b.store.ClaimOrderRequests(ctx, []int64{id})
		require.NoError(t, err)
		require.NoError(t, b.store.ApplyOrders(ctx, []store.AppliedOrder{{ID: id, ExternalOrderID: 77, ExternalCreatedAt: time.Now()}}))

		w, tx := testkit.NewWorker(t, b.store.Pool, jobs.NewOrderSubmitWorker(deps))
		res, err := w.Work(ctx, t, tx, jobs.OrderSubmitArgs{OrderRequestID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		row, err := b.store.GetOrderRequest(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.OrderApplied, row.Status)
		require.Equal(t, int64(77), *row.ExternalOrderID, "the row keeps its order")
		s := stats(t, b)
		require.Zero(t, s.Posts+s.Gets, "no call to the partner")
	})
}
