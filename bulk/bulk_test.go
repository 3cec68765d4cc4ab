package bulk_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/bulk"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

type testBundle struct {
	ctx    context.Context
	store  *store.Store
	client *bulk.Client
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := testkit.Pool(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: testkit.Logger(t)})
	require.NoError(t, err)
	return &testBundle{ctx: context.Background(), store: store.New(pool), client: client}
}

// cancelled enqueues a therapy_stats job for each user and cancels it, as
// a worker that found no such user would.
func (b *testBundle) cancelled(t *testing.T, users ...int64) []int64 {
	t.Helper()
	ids := make([]int64, len(users))
	for i, u := range users {
		res, err := b.client.Insert(b.ctx, stats(u), nil)
		require.NoError(t, err)
		_, err = b.client.JobCancel(b.ctx, res.Job.ID)
		require.NoError(t, err)
		ids[i] = res.Job.ID
	}
	return ids
}

func stats(user int64) jobs.TherapyStatsArgs {
	return jobs.TherapyStatsArgs{TherapyUserID: user, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}
}

func (b *testBundle) state(t *testing.T, id int64) string {
	t.Helper()
	j, err := b.client.JobGet(b.ctx, id)
	require.NoError(t, err)
	return string(j.State)
}

// faultyStore is the real store with a fault put between it and Run: fail
// has a batch's transaction fail instead of recording its counts, and
// beforeBatch runs with the batch's snapshot taken, before it lists jobs.
type faultyStore struct {
	*store.Store
	batches     int
	fail        func(batch int) error
	beforeBatch func()
}

func (s *faultyStore) InTxWith(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	return s.Store.InTxWith(ctx, opts, func(tx pgx.Tx) error {
		if s.beforeBatch != nil {
			if _, err := tx.Exec(ctx, `SELECT 1`); err != nil { // takes the snapshot
				return err
			}
			s.beforeBatch()
		}
		return fn(tx)
	})
}

func (s *faultyStore) AddOperatorActionBatchTx(ctx context.Context, tx pgx.Tx, id, matched, acted int64, last bool) error {
	s.batches++
	if s.fail != nil {
		if err := s.fail(s.batches); err != nil {
			return err
		}
	}
	return s.Store.AddOperatorActionBatchTx(ctx, tx, id, matched, acted, last)
}

// A retry that fails in its second batch leaves the first batch's jobs
// retried and recorded, the rest as they were, and its record unfinished;
// run again, it picks up the rest.
func TestRunStoppedHalfWayRecordsWhatItDid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.cancelled(t, 1, 2, 3, 4, 5)
	failed := errors.New("connection lost")
	st := &faultyStore{Store: b.store, fail: func(batch int) error {
		if batch == 2 {
			return failed
		}
		return nil
	}}
	f := bulk.Filter{Kinds: []string{"therapy_stats"}}

	res, err := bulk.Run(b.ctx, b.client, st, bulk.Retry, f, bulk.Opts{BatchSize: 2, By: "alice"})
	require.ErrorIs(t, err, failed)
	require.ErrorContains(t, err, "bulk: retry: stopped after 2 of the matching jobs, 2 done, as operator_action")
	require.Equal(t, []int64{2, 2}, []int64{res.Matched, res.Acted})
	for i, id := range ids {
		want := "cancelled"
		if i < 2 {
			want = "available"
		}
		require.Equal(t, want, b.state(t, id), "job %d", i)
	}
	actions, err := b.store.OperatorActions(b.ctx, 20)
	require.NoError(t, err)
	require.Len(t, actions, 1)
	require.Equal(t, res.ActionID, actions[0].ID)
	require.Equal(t, []int64{2, 2}, []int64{actions[0].Matched, actions[0].Acted})
	require.True(t, actions[0].FinishedAt.IsZero(), "it did not finish")

	res, err = bulk.Run(b.ctx, b.client, b.store, bulk.Retry, f, bulk.Opts{BatchSize: 2, By: "alice"})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 3}, []int64{res.Matched, res.Acted})
	for _, id := range ids {
		require.Equal(t, "available", b.state(t, id))
	}
	actions, err = b.store.OperatorActions(b.ctx, 20)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 3}, []int64{actions[0].Matched, actions[0].Acted})
	require.False(t, actions[0].FinishedAt.IsZero())
}

// A job whose retry would make a second live job with the same unique args
// is skipped, naming it, and the batch goes on with the others.
func TestRetrySkipsAJobWithALiveDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.cancelled(t, 1, 2, 3)
	// User 2's month was enqueued again after its job was cancelled.
	again, err := b.client.Insert(b.ctx, stats(2), nil)
	require.NoError(t, err)
	require.False(t, again.UniqueSkippedAsDuplicate)

	res, err := bulk.Run(b.ctx, b.client, b.store, bulk.Retry, bulk.Filter{}, bulk.Opts{})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 2}, []int64{res.Matched, res.Acted})
	require.Equal(t, map[bulk.Skip]int64{bulk.SkipDuplicate: 1}, res.Skipped)
	require.Equal(t, []int64{ids[1]}, res.SkippedIDs[bulk.SkipDuplicate])
	require.Equal(t, "available", b.state(t, ids[0]))
	require.Equal(t, "cancelled", b.state(t, ids[1]))
	require.Equal(t, "available", b.state(t, ids[2]))
	require.Equal(t, "available", b.state(t, again.Job.ID))
}

// A job retried by someone else after the batch listed it is not retried a
// second time: the batch's snapshot no longer holds, and it is skipped.
func TestRetrySkipsAJobChangedSinceItWasListed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.cancelled(t, 1, 2)
	st := &faultyStore{Store: b.store, beforeBatch: func() {
		_, err := b.client.JobRetry(b.ctx, ids[0]) // another operator, committed at once
		require.NoError(t, err)
	}}
	res, err := bulk.Run(b.ctx, b.client, st, bulk.Retry, bulk.Filter{}, bulk.Opts{})
	require.NoError(t, err)
	require.Equal(t, []int64{2, 1}, []int64{res.Matched, res.Acted})
	require.Equal(t, []int64{ids[0]}, res.SkippedIDs[bulk.SkipChanged])
	require.Equal(t, "available", b.state(t, ids[1]))
}

// Count lists what Run would act on, by kind and state, and changes
// nothing.
func TestCountChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.cancelled(t, 1, 2)
	_, err := b.client.Insert(b.ctx, jobs.OrderReconcileArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	total, by, err := bulk.Count(b.ctx, b.client, bulk.Retry, bulk.Filter{})
	require.NoError(t, err)
	require.Equal(t, int64(2), total)
	require.Equal(t, []bulk.KindState{{Kind: "therapy_stats", State: "cancelled", Count: 2}}, by)
	total, by, err = bulk.Count(b.ctx, b.client, bulk.Cancel, bulk.Filter{Kinds: []string{"order_reconcile"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), total)
	require.Equal(t, []bulk.KindState{{Kind: "order_reconcile", State: "scheduled", Count: 1}}, by)
	for _, id := range ids {
		require.Equal(t, "cancelled", b.state(t, id))
	}
	actions, err := b.store.OperatorActions(b.ctx, 20)
	require.NoError(t, err)
	require.Empty(t, actions)
}
