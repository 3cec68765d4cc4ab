package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/orderapi"
)

// orderStageTimes adds up where order_submit's attempts spend their time,
// measured from outside the worker: a worker middleware installed in the
// bench's own client sees River's fetch (the job's attempted_at) and the
// attempt's start and end, and a decorator around the order API sees the
// calls. The claim is the time from the start to the first call, the apply
// the time from the last call to the end.
type orderStageTimes struct {
	river.MiddlewareDefaults
	fetch, claim, call, apply, work stageSum
}

type stageSum struct{ n, nanos atomic.Int64 }

func (s *stageSum) add(d time.Duration) {
	s.n.Add(1)
	s.nanos.Add(int64(d))
}

func (s *stageSum) mean() time.Duration {
	if n := s.n.Load(); n > 0 {
		return time.Duration(s.nanos.Load() / n)
	}
	return 0
}

// orderStages is a snapshot of orderStageTimes: the attempts counted, the
// mean duration of each stage, and the time all attempts spent in Work
// (divided by a run's wall time: how many workers were in Work on average).
type orderStages struct {
	Attempts                        int64
	FetchToWork, Claim, Call, Apply time.Duration
	InWork                          time.Duration
}

func (s *orderStageTimes) snapshot() orderStages {
	return orderStages{
		Attempts:    s.work.n.Load(),
		InWork:      time.Duration(s.work.nanos.Load()),
		FetchToWork: s.fetch.mean(),
		Claim:       s.claim.mean(),
		Call:        s.call.mean(),
		Apply:       s.apply.mean(),
	}
}

// attempt is one order_submit attempt's clock, carried in its context.
type attempt struct {
	mu            sync.Mutex
	start, called time.Time // called: the end of the last call
}

type attemptKey struct{}

// Work times an order_submit attempt (other kinds pass through).
func (s *orderStageTimes) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if job.Kind != (jobs.OrderSubmitArgs{}).Kind() {
		return doInner(ctx)
	}
	a := &attempt{start: time.Now()}
	if job.AttemptedAt != nil {
		s.fetch.add(a.start.Sub(*job.AttemptedAt))
	}
	err := doInner(context.WithValue(ctx, attemptKey{}, a))
	end := time.Now()
	s.work.add(end.Sub(a.start))
	a.mu.Lock()
	if !a.called.IsZero() {
		s.apply.add(end.Sub(a.called))
	}
	a.mu.Unlock()
	return err
}

// timedOrderAPI is the order API with each call of an attempt timed.
type timedOrderAPI struct {
	api    jobs.OrderAPI
	stages *orderStageTimes
}

// track records a call that started at from: the first call of an attempt
// ends its claim; a create is the stage "call".
func (t timedOrderAPI) track(ctx context.Context, from time.Time, create bool) {
	end := time.Now()
	if create {
		t.stages.call.add(end.Sub(from))
	}
	a, ok := ctx.Value(attemptKey{}).(*attempt)
	if !ok {
		return
	}
	a.mu.Lock()
	if a.called.IsZero() {
		t.stages.claim.add(from.Sub(a.start))
	}
	a.called = end
	a.mu.Unlock()
}

func (t timedOrderAPI) Create(ctx context.Context, req orderapi.OrderRequest) (orderapi.Order, error) {
	from := time.Now()
	defer t.track(ctx, from, true)
	return t.api.Create(ctx, req)
}

func (t timedOrderAPI) Lookup(ctx context.Context, username, yearMonth string) (orderapi.Order, error) {
	from := time.Now()
	defer t.track(ctx, from, false)
	return t.api.Lookup(ctx, username, yearMonth)
}

func (t timedOrderAPI) List(ctx context.Context, afterID int64, limit int) ([]orderapi.Order, error) {
	return t.api.List(ctx, afterID, limit)
}

var (
	_ rivertype.WorkerMiddleware = (*orderStageTimes)(nil)
	_ jobs.OrderAPI              = timedOrderAPI{}
)
