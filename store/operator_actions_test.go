package store_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/store"
)

// An operator action is recorded before its first batch with nothing done;
// each batch's counts count only once its transaction commits, and the last
// batch finishes it. The page's read lists the newest first, bounded.
func TestOperatorActionCountsFollowCommittedBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, err := b.store.StartOperatorAction(b.ctx, "retry", json.RawMessage(`{"kind": ["therapy_stats"]}`), "alice")
	require.NoError(t, err)
	got, err := b.store.OperatorActions(b.ctx, 20)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, id, got[0].ID)
	require.Equal(t, "retry", got[0].Action)
	require.JSONEq(t, `{"kind": ["therapy_stats"]}`, string(got[0].Filter))
	require.Equal(t, "alice", got[0].By)
	require.Zero(t, got[0].Matched)
	require.Zero(t, got[0].Acted)
	require.True(t, got[0].FinishedAt.IsZero(), "not finished before its batches")

	require.NoError(t, b.store.InTx(b.ctx, func(tx pgx.Tx) error {
		return b.store.AddOperatorActionBatchTx(b.ctx, tx, id, 1000, 998, false)
	}))
	// A batch that rolls back leaves no count behind.
	rolledBack := fmt.Errorf("the batch failed")
	err = b.store.InTx(b.ctx, func(tx pgx.Tx) error {
		require.NoError(t, b.store.AddOperatorActionBatchTx(b.ctx, tx, id, 1000, 1000, false))
		return rolledBack
	})
	require.ErrorIs(t, err, rolledBack)
	require.NoError(t, b.store.InTx(b.ctx, func(tx pgx.Tx) error {
		return b.store.AddOperatorActionBatchTx(b.ctx, tx, id, 3, 3, true)
	}))
	got, err = b.store.OperatorActions(b.ctx, 20)
	require.NoError(t, err)
	require.Equal(t, int64(1003), got[0].Matched)
	require.Equal(t, int64(1001), got[0].Acted)
	require.False(t, got[0].FinishedAt.IsZero())
	require.False(t, got[0].FinishedAt.Before(got[0].At))

	// A finished action takes no more batches.
	err = b.store.InTx(b.ctx, func(tx pgx.Tx) error { return b.store.AddOperatorActionBatchTx(b.ctx, tx, id, 1, 1, true) })
	require.ErrorIs(t, err, store.ErrNotFound)

	// No user known: by is empty, not a blank string stored.
	for range 3 {
		_, err := b.store.StartOperatorAction(b.ctx, "cancel", json.RawMessage(`{"queue": ["parked"]}`), "")
		require.NoError(t, err)
	}
	got, err = b.store.OperatorActions(b.ctx, 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Greater(t, got[0].ID, got[1].ID, "newest first")
	require.Equal(t, "cancel", got[0].Action)
	require.Empty(t, got[0].By)
	var nulls int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM operator_action WHERE by IS NULL`).Scan(&nulls))
	require.Equal(t, 3, nulls)

	_, err = b.store.StartOperatorAction(b.ctx, "Drop Table", json.RawMessage(`{}`), "")
	require.ErrorContains(t, err, "operator_action_action_check", "an action is a snake_case name")

	// An HTTP request: recorded before it is acted on, then its answer.
	id, err = b.store.StartOperatorRequest(b.ctx, store.OperatorRequest{Action: "delete", Via: store.ViaRiverUI,
		By: "ann", Addr: "192.0.2.7", Target: json.RawMessage(`{"ids": ["1", "2"]}`)})
	require.NoError(t, err)
	got, err = b.store.OperatorActions(b.ctx, 1)
	require.NoError(t, err)
	require.Equal(t, id, got[0].ID)
	require.True(t, got[0].FinishedAt.IsZero(), "unfinished until answered")
	require.Zero(t, got[0].Status)
	require.NoError(t, b.store.FinishOperatorRequest(b.ctx, id, 200, 2, 2))
	got, err = b.store.OperatorActions(b.ctx, 1)
	require.NoError(t, err)
	require.Equal(t, store.OperatorAction{ID: id, At: got[0].At, Action: "delete", Via: "riverui", Filter: got[0].Filter,
		Matched: 2, Acted: 2, By: "ann", Status: 200, Addr: "192.0.2.7", FinishedAt: got[0].FinishedAt}, got[0])
	require.JSONEq(t, `{"ids": ["1", "2"]}`, string(got[0].Filter))
	require.ErrorIs(t, b.store.FinishOperatorRequest(b.ctx, id, 200, 2, 2), store.ErrNotFound, "finished once")
	_, err = b.store.StartOperatorRequest(b.ctx, store.OperatorRequest{Action: "pause", Via: "email", By: "ann", Target: json.RawMessage(`{}`)})
	require.ErrorContains(t, err, "operator_action_via_check")
}
