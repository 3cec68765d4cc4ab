package store_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/store"
)

// sendingRows inserts n requests and claims them (SENDING), as order_submit
// does before its call.
func (b *testBundle) sendingRows(t *testing.T, n int) []int64 {
	t.Helper()
	in := make([]store.OrderRequestInput, n)
	for i := range in {
		in[i] = store.OrderRequestInput{Username: string(rune('a' + i)), TotalPrice: 100, AppliedYearMonth: "2025-02"}
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
	rows, err := b.store.Pool.Query(b.ctx, `SELECT status FROM order_request WHERE id = ANY($1) ORDER BY id`, ids)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// ApplyOrders commits the APPLIED rows and the completion's statement as one
// transaction, sent with its COMMIT in one pipeline: when the completion's
// statement fails, or the completion sends none, no row is APPLIED. A
// second statement is refused and never runs; the first one's transaction
// has committed by then (checks after the statement are too late, which is
// why a completion must check in SQL).
func TestApplyOrdersIsOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.sendingRows(t, 3)
	orders := []store.AppliedOrder{
		{ID: ids[0], ExternalOrderID: 70, ExternalCreatedAt: time.Now()},
		{ID: ids[1], ExternalOrderID: 71, ExternalCreatedAt: time.Now()},
	}

	err := b.store.ApplyOrders(b.ctx, orders, func(tx pgx.Tx) error {
		rows, err := tx.Query(b.ctx, `SELECT 1 / 0`)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	require.ErrorContains(t, err, "division by zero")
	require.Equal(t, []string{"SENDING", "SENDING", "SENDING"}, b.statuses(t, ids), "a failed completion applies nothing")

	err = b.store.ApplyOrders(b.ctx, orders, func(pgx.Tx) error { return nil })
	require.ErrorContains(t, err, "sent no statement")
	require.Equal(t, []string{"SENDING", "SENDING", "SENDING"}, b.statuses(t, ids))

	var seen []int64
	err = b.store.ApplyOrders(b.ctx, orders, func(tx pgx.Tx) error {
		// The completion sees the UPDATE: it runs in the same transaction.
		rows, err := tx.Query(b.ctx, `SELECT id FROM order_request WHERE status = 'APPLIED' ORDER BY id`)
		if err != nil {
			return err
		}
		seen, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	require.NoError(t, err)
	require.Equal(t, ids[:2], seen)
	require.Equal(t, []string{"APPLIED", "APPLIED", "SENDING"}, b.statuses(t, ids))
	var ext int64
	require.NoError(t, b.store.Pool.QueryRow(b.ctx, `SELECT external_order_id FROM order_request WHERE id = $1`, ids[1]).Scan(&ext))
	require.Equal(t, int64(71), ext)

	// A second statement is refused, and runs neither in nor after the
	// transaction; the first statement and the rows were committed with it.
	more := []store.AppliedOrder{{ID: ids[2], ExternalOrderID: 72, ExternalCreatedAt: time.Now()}}
	err = b.store.ApplyOrders(b.ctx, more, func(tx pgx.Tx) error {
		rows, err := tx.Query(b.ctx, `SELECT 1`)
		if err != nil {
			return err
		}
		rows.Close()
		_, err = tx.Exec(b.ctx, `UPDATE order_request SET total_price = 999 WHERE id = $1`, ids[0])
		return err
	})
	require.ErrorContains(t, err, "single Query")
	require.Equal(t, []string{"APPLIED", "APPLIED", "APPLIED"}, b.statuses(t, ids))
	var price int64
	require.NoError(t, b.store.Pool.QueryRow(b.ctx, `SELECT total_price FROM order_request WHERE id = $1`, ids[0]).Scan(&price))
	require.Equal(t, int64(100), price, "the refused statement never ran")
	var open int
	require.NoError(t, b.store.Pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open))
	require.Zero(t, open, "no connection was left inside a transaction")
}
