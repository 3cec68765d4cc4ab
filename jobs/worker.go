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
