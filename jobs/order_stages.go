package jobs

import (
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
)

// OrderStageTimes adds up where order_submit's attempts spend their time:
// from River's fetch (the job's attempted_at) to Work, the claim, the POST
// and the apply, each over the attempts that reached it, and the time spent
// in Work in all. It is for measuring (the orders benchmark prints it); a
// nil *OrderStageTimes records nothing.
type OrderStageTimes struct {
	stages [stageCount]stageSum
}

type stageSum struct{ n, nanos atomic.Int64 }

type orderStage int

const (
	stageFetch orderStage = iota
	stageClaim
	stageCall
	stageApply
	stageWork
	stageCount
)

// OrderStages is a snapshot of OrderStageTimes: the attempts counted, the
// mean duration of each stage, and the time all attempts spent in Work
// (divided by a run's wall time: how many workers were in Work on average).
type OrderStages struct {
	Attempts                        int64
	FetchToWork, Claim, Call, Apply time.Duration
	InWork                          time.Duration
}

// Snapshot returns the mean of each stage so far.
func (s *OrderStageTimes) Snapshot() OrderStages {
	mean := func(m *stageSum) time.Duration {
		if n := m.n.Load(); n > 0 {
			return time.Duration(m.nanos.Load() / n)
		}
		return 0
	}
	return OrderStages{
		Attempts:    s.stages[stageWork].n.Load(),
		InWork:      time.Duration(s.stages[stageWork].nanos.Load()),
		FetchToWork: mean(&s.stages[stageFetch]),
		Claim:       mean(&s.stages[stageClaim]),
		Call:        mean(&s.stages[stageCall]),
		Apply:       mean(&s.stages[stageApply]),
	}
}

// begin records the wait from River's fetch to Work and returns what
// records the attempt's time in Work when it returns.
func (s *OrderStageTimes) begin(job *river.Job[OrderSubmitArgs]) func() {
	if s == nil {
		return func() {}
	}
	started := time.Now()
	if job.AttemptedAt != nil {
		s.add(stageFetch, *job.AttemptedAt)
	}
	return func() { s.add(stageWork, started) }
}

// start returns the time a stage starts, or zero when s is nil.
func (s *OrderStageTimes) start() time.Time {
	if s == nil {
		return time.Time{}
	}
	return time.Now()
}

// add records a stage that started at from.
func (s *OrderStageTimes) add(st orderStage, from time.Time) {
	if s == nil {
		return
	}
	s.stages[st].n.Add(1)
	s.stages[st].nanos.Add(int64(time.Since(from)))
}
