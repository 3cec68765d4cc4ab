package jobs

import (
	"context"
	"time"
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
