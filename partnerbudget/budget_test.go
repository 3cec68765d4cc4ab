package partnerbudget_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/partnerbudget"
)

type testBundle struct {
	rdb    *redis.Client
	prefix string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	rdb := testredis.Client(t)
	prefix := testredis.Prefix(t, rdb) + ":partner"
	return &testBundle{rdb: rdb, prefix: prefix}
}

func (tb *testBundle) budget(s partnerbudget.Settings) *partnerbudget.Budget {
	s.Prefix = tb.prefix
	return partnerbudget.New(tb.rdb, s, nil)
}

// Two budgets on one prefix (two processes) start calls at the shared rate
// together, not each.
func TestRateIsShared(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a, b := tb.budget(partnerbudget.Settings{Rate: 50}), tb.budget(partnerbudget.Settings{Rate: 50})
	ctx := context.Background()
	var calls atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		bud := a
		if i%2 == 1 {
			bud = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for calls.Load() < 60 {
				p, err := bud.Acquire(ctx)
				var nb *partnerbudget.NoBudget
				if errors.As(err, &nb) {
					continue
				}
				require.NoError(t, err)
				calls.Add(1)
				p.Done(ctx, nil)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := calls.Load()
	// 50/s shared: 60 calls (and the ≤ 20 in flight past the count) take
	// at least a second; two budgets each at 50/s would take half that.
	require.GreaterOrEqual(t, elapsed, time.Duration(float64(n-1)/50*float64(time.Second))-50*time.Millisecond, "%d calls in %s", n, elapsed)
}

// A rate slot further than the horizon is not waited for: NoBudget(rate).
func TestRateBeyondHorizonSnoozes(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	bud := tb.budget(partnerbudget.Settings{Rate: 1})
	ctx := context.Background()
	// Five at once: slots at 0, 1 and 2 s are within the 2 s horizon and
	// waited for; the other two snooze.
	var mu sync.Mutex
	var snoozed []*partnerbudget.NoBudget
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := bud.Acquire(ctx)
			var nb *partnerbudget.NoBudget
			if errors.As(err, &nb) {
				mu.Lock()
				snoozed = append(snoozed, nb)
				mu.Unlock()
				return
			}
			require.NoError(t, err)
			p.Release(ctx)
		}()
	}
	wg.Wait()
	require.Len(t, snoozed, 2)
	for _, nb := range snoozed {
		require.Equal(t, partnerbudget.ReasonRate, nb.Reason)
		require.Greater(t, nb.Wait, 50*time.Millisecond)
	}
}

// Calls in flight are bounded across budgets; a released slot is taken
// again; a slot whose process died expires.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	s := partnerbudget.Settings{Concurrency: 2, CallTimeout: time.Millisecond}
	a, b := tb.budget(s), tb.budget(s)
	ctx := context.Background()
	p1, err := a.Acquire(ctx)
	require.NoError(t, err)
	p2, err := b.Acquire(ctx)
	require.NoError(t, err)
	st, err := a.Status(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.InFlight)
	got := make(chan time.Time, 1)
	go func() {
		p, err := a.Acquire(ctx)
		if err == nil {
			at := time.Now()
			p.Done(ctx, nil) // before the test reads the slots in flight
			got <- at
		}
		close(got)
	}()
	time.Sleep(200 * time.Millisecond)
	released := time.Now()
	p1.Done(ctx, nil)
	at, ok := <-got
	require.True(t, ok, "the third call got a slot once one was freed")
	require.True(t, at.After(released))
	// p2's process "dies": its slot lasts CallTimeout + 5 s at most.
	_ = p2
	st, err = a.Status(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.InFlight)
	require.Eventually(t, func() bool {
		st, err := a.Status(ctx)
		return err == nil && st.InFlight == 0
	}, 10*time.Second, 100*time.Millisecond, "a dead process's slot expires")
}

func statusErr(code int, ra time.Duration) error {
	return &orderapi.StatusError{Op: "create", Status: code, Message: "busy", RetryAfter: ra}
}

// A 429 pauses every process for its Retry-After; the job that got it
// snoozes about that long.
func TestRetryAfterPausesEveryone(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a, b := tb.budget(partnerbudget.Settings{Rate: 100}), tb.budget(partnerbudget.Settings{})
	ctx := context.Background()
	p, err := a.Acquire(ctx)
	require.NoError(t, err)
	snooze, retry := p.Done(ctx, statusErr(http.StatusTooManyRequests, 3*time.Second))
	require.True(t, retry)
	require.GreaterOrEqual(t, snooze, 3*time.Second)
	require.Less(t, snooze, 3600*time.Millisecond)
	for _, bud := range []*partnerbudget.Budget{a, b} {
		_, err = bud.Acquire(ctx)
		var nb *partnerbudget.NoBudget
		require.ErrorAs(t, err, &nb)
		require.Equal(t, partnerbudget.ReasonRetryAfter, nb.Reason)
		require.Greater(t, nb.Wait, 2*time.Second)
	}
	st, err := b.Status(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(3*time.Second), st.PausedUntil, 500*time.Millisecond)
	require.Equal(t, partnerbudget.BreakerClosed, st.Breaker, "a busy partner is not a failing one")
}

// Ten failures in a row open the breaker for everyone; once it half-opens
// one probe goes through at a time; a failed probe opens it again, a
// successful one closes it.
func TestBreaker(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a, b := tb.budget(partnerbudget.Settings{}), tb.budget(partnerbudget.Settings{})
	ctx := context.Background()
	fail := errors.New("orderapi: create: dial tcp: connection refused")
	for range partnerbudget.BreakerFailures {
		p, err := a.Acquire(ctx)
		require.NoError(t, err)
		_, retry := p.Done(ctx, fail)
		require.False(t, retry, "a failure is retried by River, not snoozed")
	}
	st, err := b.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, partnerbudget.BreakerOpen, st.Breaker)
	_, err = b.Acquire(ctx)
	var nb *partnerbudget.NoBudget
	require.ErrorAs(t, err, &nb)
	require.Equal(t, partnerbudget.ReasonBreaker, nb.Reason)
	require.Greater(t, nb.Wait, 4*time.Second)

	// Half-open: make it so now rather than wait BreakerOpenFor.
	halfOpen := func() {
		v, err := tb.rdb.Get(ctx, tb.prefix+":breaker:open").Float64()
		require.NoError(t, err)
		require.NoError(t, tb.rdb.Set(ctx, tb.prefix+":breaker:open", v-10, time.Minute).Err())
	}
	halfOpen()
	probe, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, probe.Probe())
	_, err = b.Acquire(ctx)
	require.ErrorAs(t, err, &nb, "one probe at a time")
	require.Equal(t, partnerbudget.ReasonBreaker, nb.Reason)
	probe.Done(ctx, fail)
	st, err = b.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, partnerbudget.BreakerOpen, st.Breaker, "a failed probe opens it again")

	// A probe cut off by its own job's context (a stopping worker) learned
	// nothing: the breaker stays as it was, and the next probe may go.
	halfOpen()
	probe, err = a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, probe.Probe())
	cut, cancel := context.WithCancel(ctx)
	cancel()
	probe.Done(cut, context.Canceled)
	st, err = b.Status(ctx)
	require.NoError(t, err)
	require.NotEqual(t, partnerbudget.BreakerClosed, st.Breaker, "a cancelled probe does not close the breaker")

	probe, err = b.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, probe.Probe())
	probe.Done(ctx, orderapi.ErrNotFound) // the partner answered
	st, err = a.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, partnerbudget.BreakerClosed, st.Breaker)
	p, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.False(t, p.Probe())
	p.Done(ctx, nil)
}

// A success between failures resets the count: a partner failing now and
// then does not open the breaker.
func TestBreakerNeedsFailuresInARow(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	bud := tb.budget(partnerbudget.Settings{})
	ctx := context.Background()
	for i := range 3 * partnerbudget.BreakerFailures {
		p, err := bud.Acquire(ctx)
		require.NoError(t, err)
		if i%5 == 4 {
			p.Done(ctx, nil)
		} else {
			p.Done(ctx, statusErr(http.StatusInternalServerError, 0))
		}
	}
	st, err := bud.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, partnerbudget.BreakerClosed, st.Breaker)
}

// Redis lost: a set budget snoozes its calls (ReasonRedis) rather than
// call beyond it; with no budget set the calls go ahead. Once Redis is
// back, permits are given again.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	opt, err := redis.ParseURL(srv.URL)
	require.NoError(t, err)
	rdb := coupongate.NewRedis(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	limited := partnerbudget.New(rdb, partnerbudget.Settings{Rate: 100, Concurrency: 10, Prefix: "p"}, nil)
	open := partnerbudget.New(rdb, partnerbudget.Settings{Prefix: "p"}, nil)
	ctx := context.Background()
	p, err := limited.Acquire(ctx)
	require.NoError(t, err)
	p.Done(ctx, nil)

	srv.Kill()
	_, err = limited.Acquire(ctx)
	var nb *partnerbudget.NoBudget
	require.ErrorAs(t, err, &nb)
	require.Equal(t, partnerbudget.ReasonRedis, nb.Reason)
	p, err = open.Acquire(ctx)
	require.NoError(t, err, "no budget set: the call goes ahead")
	p.Done(ctx, nil)

	require.NoError(t, srv.Start())
	require.Eventually(t, func() bool {
		p, err := limited.Acquire(ctx)
		if err != nil {
			return false
		}
		p.Done(ctx, nil)
		return true
	}, 10*time.Second, 50*time.Millisecond, "permits again once Redis is back")
}
