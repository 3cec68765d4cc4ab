package jobs_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// TestSettlementProgressVisibleWhileRunning reads the running job after each
// committed chunk, as `enqueue wait` does: its progress counts exactly the
// committed chunks, of a total known from the start; the final output has the
// run's counts and no progress.
func TestSettlementProgressVisibleWhileRunning(t *testing.T) {
	t.Parallel()
	type seen struct {
		cur  jobs.SettlementCursor
		list []jobs.RunningProgress
		err  error
	}
	var (
		mu         sync.Mutex
		seenChunks []seen
		b          *settleBundle
	)
	b = setup(t, settleOpts{afterChunk: func(ctx context.Context, cur jobs.SettlementCursor) {
		list, err := jobs.ListRunningProgress(ctx, b.client)
		mu.Lock()
		defer mu.Unlock()
		seenChunks = append(seenChunks, seen{cur: cur, list: list, err: err})
	}})
	var entries []store.LedgerEntry
	for range 5 {
		entries = append(entries, entry(1, "EARN", 10, "2026-03-09 10:00"))
	}
	b.ledger(t, entries...)
	job := b.run(t, "2026-03-10", jobs.SettlementRunOpts{CommitInterval: 2})

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seenChunks, 3, "three chunks of 2, 2 and 1 rows")
	for i, s := range seenChunks {
		require.NoError(t, s.err)
		require.Len(t, s.list, 1)
		p := s.list[0]
		require.Equal(t, "point_settlement", p.Kind)
		require.Equal(t, job.ID, p.JobID)
		require.True(t, p.Recorded, "chunk %d", i+1)
		require.Equal(t, "rows", p.Unit)
		require.Equal(t, s.cur.Read, p.Done, "chunk %d", i+1)
		require.Equal(t, int64(5), p.Total)
		require.Equal(t, int64(i+1), p.Counts["chunks"])
		require.Equal(t, s.cur.Written, p.Counts["written"])
		if p.Done < p.Total {
			require.NotNil(t, p.ETA, "chunk %d: an estimated finish while rows remain", i+1)
		}
	}
	_, has := jobs.JobProgress(job)
	require.False(t, has, "the final output replaces the progress")
	require.Equal(t, jobs.SettlementCounts{Read: 5, Written: 5, Chunks: 3}, output(t, job).SettlementCounts)
}
