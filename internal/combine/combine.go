// Package combine runs the same statement once for many goroutines that need
// it at the same time: the SQL of concurrently running jobs, or of
// concurrent requests.
package combine

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Combiner runs the same SQL for many concurrently running jobs at once: each
// job adds its key, and a job holding one of maxFlushers slots runs one batch
// of up to maxBatch pending keys for everyone, then hands its slot to the
// oldest waiting job. No background goroutine, and by default no timer: a
// lone job runs alone at once, and under load batches form from the jobs that
// arrived while the previous batch ran (WithLinger trades a wait for larger
// batches). Only the jobs of a finished batch and the one job
// given a slot are woken. If a batch fails, its keys are retried one by one,
// so each job gets its own key's outcome.
type Combiner[K any] struct {
	mu           sync.Mutex
	pending      []*combineReq[K]
	flushing     int // slots given out, in use or about to be
	maxFlushers  int
	maxBatch     int
	exec         func(context.Context, []K) error
	flushTimeout time.Duration
	linger       func() time.Duration
}

type combineReq[K any] struct {
	key     K
	taken   bool          // in a batch; its outcome will come on done
	granted bool          // given a flusher slot (a token is on wake)
	wake    chan struct{} // a flusher slot for this job's goroutine
	done    chan struct{} // closed when err is set
	err     error
}

// New returns a combiner that runs exec for batches of up to maxBatch keys,
// at most maxFlushers batches at a time.
func New[K any](maxFlushers, maxBatch int, exec func(context.Context, []K) error) *Combiner[K] {
	return &Combiner[K]{maxFlushers: maxFlushers, maxBatch: maxBatch, exec: exec, flushTimeout: 20 * time.Second}
}

// WithFlushTimeout sets the deadline of one batch (20 s by default). A batch
// serves several callers, so it does not end with any one caller's context.
func (c *Combiner[K]) WithFlushTimeout(d time.Duration) *Combiner[K] {
	c.flushTimeout = d
	return c
}

// WithLinger makes a job given a slot wait linger() before it takes its
// batch, so that the keys arriving meanwhile join it: fewer, larger batches
// for callers that can afford the wait. A linger of 0 takes the batch at once.
func (c *Combiner[K]) WithLinger(linger func() time.Duration) *Combiner[K] {
	c.linger = linger
	return c
}

// Do adds key to the next batch and returns its outcome: exec's error for
// the batch, or for the key alone if the batch failed. It returns ctx's
// error if ctx ends before the key is in a batch.
func (c *Combiner[K]) Do(ctx context.Context, key K) error {
	r := &combineReq[K]{key: key, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	c.pending = append(c.pending, r)
	if c.flushing < c.maxFlushers {
		c.flushing++
		c.grant(r)
	}
	c.mu.Unlock()
	for {
		select {
		case <-r.done:
			// Another slot's batch may have taken this key after it was
			// given a slot of its own: pass that unused slot on, or it is
			// lost for good (and with all of them lost, every later job
			// would wait forever).
			c.mu.Lock()
			if r.granted {
				select {
				case <-r.wake:
					c.handOff()
				default:
				}
			}
			c.mu.Unlock()
			return r.err
		case <-r.wake:
			c.useSlot(ctx)
		case <-ctx.Done():
			c.mu.Lock()
			if r.taken {
				c.mu.Unlock()
				<-r.done // its batch is running; wait for the outcome (bounded by c.flushTimeout)
				return r.err
			}
			// Not in any batch yet: leave without running (River retries it).
			c.pending = slices.DeleteFunc(c.pending, func(p *combineReq[K]) bool { return p == r })
			if r.granted {
				select {
				case <-r.wake: // the slot was never used: pass it on
				default:
				}
				c.handOff()
			}
			c.mu.Unlock()
			return ctx.Err()
		}
	}
}

// grant gives r a flusher slot. c.mu is held.
func (c *Combiner[K]) grant(r *combineReq[K]) {
	r.granted = true
	r.wake <- struct{}{} // never blocks: a request is granted at most once
}

// handOff passes a finished slot to the oldest pending request without one,
// or frees it. c.mu is held.
func (c *Combiner[K]) handOff() {
	for _, p := range c.pending {
		if !p.granted {
			c.grant(p)
			return
		}
	}
	c.flushing--
}

// useSlot runs one batch of pending keys with the slot this goroutine holds,
// then hands the slot on.
func (c *Combiner[K]) useSlot(ctx context.Context) {
	if c.linger != nil {
		if d := c.linger(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.flushing--
		c.mu.Unlock()
		return
	}
	n := min(len(c.pending), c.maxBatch)
	batch := slices.Clone(c.pending[:n])
	c.pending = slices.Delete(c.pending, 0, n)
	for _, r := range batch {
		r.taken = true
	}
	c.mu.Unlock()

	c.flush(ctx, batch)

	c.mu.Lock()
	c.handOff()
	c.mu.Unlock()
}

// flush runs one batch and delivers each key's outcome. The batch serves
// other jobs too, so it does not stop when this job's context is cancelled; it
// has a deadline of its own.
func (c *Combiner[K]) flush(ctx context.Context, batch []*combineReq[K]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.flushTimeout)
	defer cancel()
	keys := make([]K, len(batch))
	for i, r := range batch {
		keys[i] = r.key
	}
	err := c.exec(ctx, keys)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			r.err = c.exec(ctx, []K{r.key})
		}
	} else {
		for _, r := range batch {
			r.err = err
		}
	}
	for _, r := range batch {
		close(r.done)
	}
}
