package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/combine"
	"github.com/tidemark/tidemark/store"
)

// Triggers recorded on therapy_stats jobs, for audit. The daily fan-out's
// jobs, by far the most, leave Trigger empty: River's GIN index on args is
// updated with every key at each state change, so a key fewer on 100,000
// jobs is measurable (the audit view shows an empty trigger as daily).
const (
	TriggerDaily    = ""
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
	Trigger       string `json:"trigger,omitempty"`
	// StartDateTime and EndDateTime are the recover API's optional window,
	// kept for audit; the aggregation always recomputes the whole month.
	StartDateTime *time.Time `json:"start_date_time,omitempty"`
	EndDateTime   *time.Time `json:"end_date_time,omitempty"`
}

// Kind is therapy_stats.
func (TherapyStatsArgs) Kind() string { return "therapy_stats" }

// unleased: therapy_stats claims no lease (fence.go). It recomputes a
// user-month from the source rows in one statement, which a stale attempt
// may make as well as a fresh one.
func (TherapyStatsArgs) unleased() {}

// InsertOpts puts the job on the therapy queue, unique by its tagged args.
func (TherapyStatsArgs) InsertOpts() river.InsertOpts {
	return uniqueByArgs(QueueTherapy, 5)
}

// TherapyStatsWorker recomputes one user-month. Jobs running at the same time
// in this process share one SQL transaction (see combiner); a failing batch
// falls back to one transaction per job, so one user's failure is that user's
// job's failure alone, retried with River's backoff.
type TherapyStatsWorker struct {
	worker[TherapyStatsArgs]
	combiner *combine.Combiner[therapyItem]
}

// therapyItem is one job's user-month to recompute, and its attempt (zero
// outside a fenced attempt).
type therapyItem struct {
	key     store.TherapyKey
	attempt store.Attempt
}

// NewTherapyStatsWorker returns the worker, with its batch combiner, one
// aggregation bounded well inside the rescue window.
func NewTherapyStatsWorker(deps Deps) *TherapyStatsWorker {
	w := &TherapyStatsWorker{worker: worker[TherapyStatsArgs]{deps: deps, timeout: 30 * time.Second}}
	w.combiner = combine.New(2, 500, func(ctx context.Context, items []therapyItem) error {
		// An attempt River no longer runs (its worker froze, another attempt
		// recomputed the user-month) rewrites nothing, not even the row's
		// aggregated_at: the batch's transaction checks first
		// (store.AggregateTherapy). A batch refused so is run again one job
		// at a time, each getting its own answer.
		keys := make([]store.TherapyKey, len(items))
		var attempts []store.Attempt
		for i, it := range items {
			keys[i] = it.key
			if it.attempt.JobID != 0 {
				attempts = append(attempts, it.attempt)
			}
		}
		return deps.Store.AggregateTherapy(ctx, keys, deps.TZ, attempts...)
	})
	return w
}

// Work recomputes the job's user-month.
func (w *TherapyStatsWorker) Work(ctx context.Context, job *river.Job[TherapyStatsArgs]) error {
	a := job.Args
	if !calendar.ValidYearMonth(a.Year, a.Month) || a.TherapyUserID <= 0 {
		return river.JobCancel(fmt.Errorf("therapy_stats: invalid args user %d %04d-%02d", a.TherapyUserID, a.Year, a.Month))
	}
	item := therapyItem{key: store.NewTherapyKey(a.TherapyUserID, a.Year, a.Month, w.deps.TZ)}
	if s, ok := attemptOf(ctx); ok {
		item.attempt = s.Attempt
	}
	err := w.combiner.Do(ctx, item)
	if errors.Is(err, store.ErrUnknownTherapyUser) {
		return river.JobCancel(err) // no retry can make the user exist
	}
	if errors.Is(err, store.ErrStale) {
		if s, ok := attemptOf(ctx); ok {
			s.stale.Store(true)
		}
		return nil
	}
	if s, ok := attemptOf(ctx); ok && err == nil {
		s.proven.Store(true) // the aggregation checked the attempt as it committed
	}
	return err
}

// EnqueueResult counts what an enqueue did.
type EnqueueResult struct {
	Inserted   int
	Duplicates int
	// StatisticsErr says why river_job's statistics could not be brought up
	// to date during the enqueue; the jobs were enqueued all the same, so
	// callers log it and carry on.
	StatisticsErr error
}

// EnqueueTherapyStats inserts one therapy_stats job per user for year-month, in
// batches of 2,000, and reports how many were new and how many were skipped as
// duplicates of an existing job. progress, if not nil, is called after each
// batch with the number of users handled so far.
//
// Each batch is its own transaction and first tries River's fast bulk insert
// (COPY, which cannot skip duplicates); a batch that hits a unique key is
// rolled back and inserted again with InsertMany, which skips them. Fresh
// fan-outs take the fast path; a retried one pays for its duplicates.
//
// After the first batch, each time the batches done double, and after the
// last, river_job is analysed if its statistics are stale
// (store.AnalyzeIfStale): plans cached while the table was small would
// otherwise scan it for every fetch as it grows, and a fan-out grows it
// faster than autovacuum looks. Doubling keeps that to a dozen cheap
// checks for a million users.
func EnqueueTherapyStats(ctx context.Context, client *Client, st *store.Store, users []int64, year, month int,
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
		inserted, err := insertSkippingDuplicates(ctx, client, st, params)
		if err != nil {
			return res, fmt.Errorf("jobs: enqueue therapy_stats %04d-%02d: %w", year, month, err)
		}
		res.Inserted += inserted
		res.Duplicates += len(params) - inserted
		if done := start/batchSize + 1; done&(done-1) == 0 || end == len(users) {
			if _, err := st.AnalyzeIfStale(ctx, store.TableRiverJob); err != nil {
				res.StatisticsErr = err
			}
		}
		if progress != nil {
			progress(end)
		}
	}
	return res, nil
}

// insertSkippingDuplicates inserts params, skipping those whose unique key is
// taken, and returns how many it inserted (see EnqueueTherapyStats).
func insertSkippingDuplicates(ctx context.Context, client *Client, st *store.Store, params []river.InsertManyParams) (int, error) {
	count := func(results []*rivertype.JobInsertResult) int {
		n := 0
		for _, r := range results {
			if !r.UniqueSkippedAsDuplicate {
				n++
			}
		}
		return n
	}
	// Fenced: inside a fan-out's attempt, a stale attempt inserts nothing.
	var n int
	err := fenced(ctx, st, func(tx pgx.Tx) error {
		var err error
		n, err = client.InsertManyFastTx(ctx, tx, params)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		err = fenced(ctx, st, func(tx pgx.Tx) error {
			results, err := client.InsertManyTx(ctx, tx, params)
			n = count(results)
			return err
		})
	}
	return n, err
}
