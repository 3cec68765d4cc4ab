package jobs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/store"
)

// Triggers recorded on therapy_stats jobs, for audit.
const (
	TriggerDaily    = "daily"
	TriggerBackfill = "backfill"
	TriggerRecover  = "recover"
)

// TherapyStatsArgs recomputes one user's statistics for one month. It is
// unique on (user, month, business date): the daily fan-out and backfills
// never aggregate a user-month twice on one business date. A recover request
// carries a RecoverID of its own, so it always runs again.
type TherapyStatsArgs struct {
	TherapyUserID int64  `json:"therapy_user_id" river:"unique"`
	Year          int    `json:"year" river:"unique"`
	Month         int    `json:"month" river:"unique"`
	BusinessDate  string `json:"business_date" river:"unique"`
	RecoverID     string `json:"recover_id,omitempty" river:"unique"`
	Trigger       string `json:"trigger"`
	// StartDateTime and EndDateTime are the recover API's optional window,
	// kept for audit; the aggregation always recomputes the whole month.
	StartDateTime *time.Time `json:"start_date_time,omitempty"`
	EndDateTime   *time.Time `json:"end_date_time,omitempty"`
}

// Kind is therapy_stats.
func (TherapyStatsArgs) Kind() string { return "therapy_stats" }

// InsertOpts puts the job on the therapy queue, unique by its tagged args.
func (TherapyStatsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       config.QueueTherapy,
		MaxAttempts: 5,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}
}

// TherapyStatsWorker recomputes one user-month. Jobs running at the same time
// in this process share one SQL transaction (see combiner); a failing batch
// falls back to one transaction per job, so one user's failure is that user's
// job's failure alone, retried with River's backoff.
type TherapyStatsWorker struct {
	river.WorkerDefaults[TherapyStatsArgs]
	deps     Deps
	combiner *combiner[store.TherapyKey]
}

// NewTherapyStatsWorker returns the worker, with its batch combiner.
func NewTherapyStatsWorker(deps Deps) *TherapyStatsWorker {
	w := &TherapyStatsWorker{deps: deps}
	w.combiner = newCombiner(4, 200, func(ctx context.Context, keys []store.TherapyKey) error {
		return deps.Store.AggregateTherapy(ctx, keys, deps.TZ)
	})
	return w
}

// Timeout bounds one aggregation, well inside the rescue window.
func (w *TherapyStatsWorker) Timeout(*river.Job[TherapyStatsArgs]) time.Duration {
	return 30 * time.Second
}

// Work recomputes the job's user-month.
func (w *TherapyStatsWorker) Work(ctx context.Context, job *river.Job[TherapyStatsArgs]) error {
	a := job.Args
	if a.Month < 1 || a.Month > 12 || a.Year < 1 || a.Year > 9999 || a.TherapyUserID <= 0 {
		return river.JobCancel(fmt.Errorf("therapy_stats: invalid args user %d %04d-%02d", a.TherapyUserID, a.Year, a.Month))
	}
	return w.combiner.do(ctx, store.NewTherapyKey(a.TherapyUserID, a.Year, a.Month, w.deps.TZ))
}

// combiner runs the same SQL for many concurrently running jobs at once: each
// job adds its key, and whichever waiting job finds a free slot (at most
// maxFlushers at a time) runs one batch of up to maxBatch pending keys for
// everyone. No timer, no background goroutine: a lone job runs alone at once,
// and under load batches form from the jobs that arrived while the previous
// batch ran. If a batch fails, its keys are retried one by one, so each job
// gets its own key's outcome.
type combiner[K any] struct {
	mu          sync.Mutex
	cond        *sync.Cond
	pending     []*combineReq[K]
	flushing    int
	maxFlushers int
	maxBatch    int
	exec        func(context.Context, []K) error
	// flushTimeout bounds one batch (20s when zero).
	flushTimeout time.Duration
}

type combineReq[K any] struct {
	key   K
	taken bool // in a batch being run; its outcome will come
	done  bool
	err   error
}

func newCombiner[K any](maxFlushers, maxBatch int, exec func(context.Context, []K) error) *combiner[K] {
	c := &combiner[K]{maxFlushers: maxFlushers, maxBatch: maxBatch, exec: exec}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *combiner[K]) do(ctx context.Context, key K) error {
	r := &combineReq[K]{key: key}
	// Wake the waiters when this job's context ends, so it can leave.
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, r)
	for !r.done {
		if !r.taken && ctx.Err() != nil {
			// Not in any batch yet: leave without running (River retries it).
			c.pending = slices.DeleteFunc(c.pending, func(p *combineReq[K]) bool { return p == r })
			return ctx.Err()
		}
		if c.flushing >= c.maxFlushers || len(c.pending) == 0 {
			c.cond.Wait()
			continue
		}
		n := min(len(c.pending), c.maxBatch)
		batch := c.pending[:n:n]
		c.pending = c.pending[n:]
		for _, b := range batch {
			b.taken = true
		}
		c.flushing++
		c.mu.Unlock()
		c.flush(ctx, batch)
		c.mu.Lock()
		c.flushing--
		c.cond.Broadcast()
	}
	return r.err
}

// flush runs one batch. The batch serves other jobs too, so it does not stop
// when this job's context is cancelled; it has a deadline of its own.
func (c *combiner[K]) flush(ctx context.Context, batch []*combineReq[K]) {
	timeout := c.flushTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
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
	c.mu.Lock()
	for _, r := range batch {
		r.done = true
	}
	c.mu.Unlock()
}

// EnqueueResult counts what an enqueue did.
type EnqueueResult struct {
	Inserted   int
	Duplicates int
	JobIDs     []int64
}

// EnqueueTherapyStats inserts one therapy_stats job per user for year-month, in
// transactions of batchSize jobs, and reports how many were new and how many
// were skipped as duplicates of an existing job. progress, if not nil, is
// called after each batch with the number of users handled so far.
func EnqueueTherapyStats(ctx context.Context, client *Client, tx pgx.Tx, users []int64, year, month int,
	businessDate, trigger string, progress func(done int),
) (EnqueueResult, error) {
	const batchSize = 2000
	var res EnqueueResult
	for start := 0; start < len(users); start += batchSize {
		end := min(start+batchSize, len(users))
		params := make([]river.InsertManyParams, 0, end-start)
		for _, u := range users[start:end] {
			params = append(params, river.InsertManyParams{Args: TherapyStatsArgs{
				TherapyUserID: u, Year: year, Month: month, BusinessDate: businessDate, Trigger: trigger,
			}})
		}
		var results []*rivertype.JobInsertResult
		var err error
		if tx != nil {
			results, err = client.InsertManyTx(ctx, tx, params)
		} else {
			results, err = client.InsertMany(ctx, params)
		}
		if err != nil {
			return res, fmt.Errorf("jobs: enqueue therapy_stats %04d-%02d: %w", year, month, err)
		}
		for _, r := range results {
			if r.UniqueSkippedAsDuplicate {
				res.Duplicates++
			} else {
				res.Inserted++
			}
			res.JobIDs = append(res.JobIDs, r.Job.ID)
		}
		if progress != nil {
			progress(end)
		}
	}
	return res, nil
}
