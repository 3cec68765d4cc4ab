package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// NewPointSettlementWorkerForTest returns the settlement worker with a step-1
// budget (0 keeps the default) and a hook called after each committed chunk.
// Every chunk records the run's progress, so the hook can read it.
func NewPointSettlementWorkerForTest(deps Deps, budget time.Duration, afterChunk func(context.Context, SettlementCursor)) *PointSettlementWorker {
	w := NewPointSettlementWorker(deps)
	if budget > 0 {
		w.budget = budget
	}
	w.afterChunk = afterChunk
	w.progressEvery = 0
	return w
}

// NewFenceForTest is the attempt fence (fence.go) whose stale attempts wait
// at most waitMax for their job to settle.
func NewFenceForTest(deps Deps, waitMax time.Duration) rivertype.Middleware {
	f := newFence(deps, unleasedKinds())
	f.waitMax = waitMax
	return f
}

// AttemptOfForTest is the job and attempt ctx's attempt is working.
func AttemptOfForTest(ctx context.Context) (jobID int64, attempt int) {
	s, _ := attemptOf(ctx)
	return s.JobID, s.Attempt.Attempt
}
