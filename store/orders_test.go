package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/store"
)

// sendingRows inserts n requests and claims them (SENDING), as order_submit
// does before its call.
func (b *testBundle) sendingRows(t *testing.T, n int) []int64 {
	t.Helper()
	in := make([]order.Request, n)
	for i := range in {
		in[i] = order.Request{Username: string(rune('a' + i)), TotalPrice: 100, AppliedYearMonth: "2025-02"}
	}
	var ids []int64
	require.NoError(t, b.store.InTx(b.ctx, func(tx pgx.Tx) (err error) {
		ids, err = b.store.InsertOrderRequestsTx(b.ctx, tx, in)
		return err
	}))
	claims, err := b.store.ClaimOrderRequests(b.ctx, ids)
	require.NoError(t, err)
	require.Len(t, claims, n)
	return ids
}

func (b *testBundle) statuses(t *testing.T, ids []int64) []string {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT status FROM order_request WHERE id = ANY($1) ORDER BY id`, ids)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// ApplyOrders sets SENDING rows APPLIED with the partner's id, and leaves a
// row that is not SENDING as it is: an APPLIED row keeps its order, a
// PENDING one was never claimed.
func TestApplyOrders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.sendingRows(t, 3)
	_, err := b.pool.Exec(b.ctx, `UPDATE order_request SET status = 'PENDING' WHERE id = $1`, ids[2])
	require.NoError(t, err)

	orders := []store.AppliedOrder{
		{ID: ids[0], ExternalOrderID: 70, ExternalCreatedAt: time.Now()},
		{ID: ids[1], ExternalOrderID: 71, ExternalCreatedAt: time.Now()},
		{ID: ids[2], ExternalOrderID: 72, ExternalCreatedAt: time.Now()},
	}
	require.NoError(t, b.store.ApplyOrders(b.ctx, orders))
	require.Equal(t, []string{"APPLIED", "APPLIED", "PENDING"}, b.statuses(t, ids))
	var ext int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT external_order_id FROM order_request WHERE id = $1`, ids[1]).Scan(&ext))
	require.Equal(t, int64(71), ext)

	require.NoError(t, b.store.ApplyOrders(b.ctx, []store.AppliedOrder{{ID: ids[1], ExternalOrderID: 99, ExternalCreatedAt: time.Now()}}))
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT external_order_id FROM order_request WHERE id = $1`, ids[1]).Scan(&ext))
	require.Equal(t, int64(71), ext, "an APPLIED row keeps its order")
}

// A username Validate accepts, Korean or emoji, of up to MaxUsernameLen
// characters, inserts as it was given.
func TestValidUsernamesInsertAsGiven(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := []string{"김철수", "홍길동 2세", "이영희\U0001F600", "\U0001F469\u200d\U0001F4BB", strings.Repeat("김", order.MaxUsernameLen)}
	in := make([]order.Request, len(good))
	for i, u := range good {
		in[i] = order.Request{Username: u, TotalPrice: 1, AppliedYearMonth: "2025-02"}
		require.NoError(t, in[i].Validate(), "%q", u)
	}
	var ids []int64
	require.NoError(t, b.store.InTx(b.ctx, func(tx pgx.Tx) (err error) {
		ids, err = b.store.InsertOrderRequestsTx(b.ctx, tx, in)
		return err
	}))
	for i, id := range ids {
		row, err := b.store.GetOrderRequest(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, good[i], row.Username)
	}
}

// last_error is stored redacted, whoever writes it: a partner URL in it
// keeps its host and loses its password and query values.
func TestOrderErrorsAreStoredRedacted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.sendingRows(t, 2)
	msg := `orderapi: create a/2025-02: Post "https://order:S3cretPW@partner.example/orders?api_key=S3cretKey": connection refused`
	want := `orderapi: create a/2025-02: Post "https://order:xxxxx@partner.example/orders?api_key=xxxxx": connection refused`
	require.NoError(t, b.store.RecordOrderError(b.ctx, ids[0], msg))
	failed, err := b.store.MarkOrderFailed(b.ctx, ids[1], msg)
	require.NoError(t, err)
	require.True(t, failed)
	for _, id := range ids {
		row, err := b.store.GetOrderRequest(b.ctx, id)
		require.NoError(t, err)
		require.NotNil(t, row.LastError)
		require.Equal(t, want, *row.LastError)
	}
}
