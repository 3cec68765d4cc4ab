package jobs

import (
	"time"

	"github.com/riverqueue/river"
)

// worker is what every tidemark worker embeds: River's defaults, the Deps it
// is built with, and the timeout River bounds each attempt with, which its
// constructor chooses inside the client's rescue window.
type worker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	deps    Deps
	timeout time.Duration
}

// Timeout bounds one attempt.
func (w *worker[T]) Timeout(*river.Job[T]) time.Duration { return w.timeout }

// uniqueByArgs is the insert options of a kind with one job per identity (its
// args tagged river:"unique") in every state but cancelled and discarded, the
// River default: a second insert is a no-op while the first is queued,
// running or completed, and a run given up may be started again.
func uniqueByArgs(queue string, maxAttempts int) river.InsertOpts {
	return river.InsertOpts{Queue: queue, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}
