package bulk

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/store"
)

// DefaultBatchSize is how many jobs one transaction lists and acts on.
const DefaultBatchSize = 1000

// maxSamples bounds the job ids a Result keeps per reason for skipping.
const maxSamples = 5

// Client is the River client jobs are listed and changed through.
type Client = river.Client[pgx.Tx]

// Store is where actions are recorded (store.Store).
type Store interface {
	InTxWith(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error
	StartOperatorAction(ctx context.Context, action string, filter json.RawMessage, by string) (int64, error)
	AddOperatorActionBatchTx(ctx context.Context, tx pgx.Tx, id, matched, acted int64, last bool) error
}

// KindState is how many matching jobs are of one kind in one state, as
// store.JobCounts counts all jobs.
type KindState = store.KindStateCount

// Count lists the jobs f matches for a, a page at a time, and counts them
// by kind and state (sorted), changing nothing: a dry run. It reads the jobs
// through the same River filter Run acts through.
func Count(ctx context.Context, client *Client, a Action, f Filter) (total int64, byKindState []KindState, err error) {
	counts := map[KindState]int64{}
	params := f.listParams(a).First(DefaultBatchSize)
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return 0, nil, fmt.Errorf("bulk: %s: list jobs: %w", a, err)
		}
		for _, j := range res.Jobs {
			counts[KindState{Kind: j.Kind, State: string(j.State)}]++
			total++
		}
		if len(res.Jobs) < DefaultBatchSize {
			break
		}
		params = params.After(res.LastCursor)
	}
	for k, n := range counts {
		k.Count = n
		byKindState = append(byKindState, k)
	}
	slices.SortFunc(byKindState, func(x, y KindState) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.State, y.State))
	})
	return total, byKindState, nil
}

// Skip is why a matching job was not acted on.
type Skip string

// The reasons.
const (
	// SkipDuplicate: retrying it would make a second live job with the same
	// unique args (one was enqueued since it failed).
	SkipDuplicate Skip = "a job with the same unique args is queued or running"
	// SkipChanged: it changed between being listed and being acted on
	// (retried, started, finished or deleted by someone else).
	SkipChanged Skip = "it changed while the batch ran"
)

// Result is what Run did.
type Result struct {
	// ActionID is the operator_action row recording it.
	ActionID int64
	// Matched is how many jobs the filter listed, Acted how many River
	// retried or cancelled.
	Matched, Acted int64
	// Running is how many of Acted were running (cancel): River has asked
	// them to stop; each ends cancelled when its worker returns.
	Running int64
	// Skipped counts the matched jobs not acted on, by reason, with up to
	// five of their ids each in SkippedIDs.
	Skipped    map[Skip]int64
	SkippedIDs map[Skip][]int64
}

func (r *Result) skip(why Skip, id int64) {
	r.skipped(why, 1, id)
}

func (r *Result) skipped(why Skip, n int64, ids ...int64) {
	if r.Skipped == nil {
		r.Skipped, r.SkippedIDs = map[Skip]int64{}, map[Skip][]int64{}
	}
	r.Skipped[why] += n
	room := maxSamples - len(r.SkippedIDs[why])
	r.SkippedIDs[why] = append(r.SkippedIDs[why], ids[:min(room, len(ids))]...)
}

// add counts a committed batch b into r.
func (r *Result) add(b Result) {
	r.Matched += b.Matched
	r.Acted += b.Acted
	r.Running += b.Running
	for why, n := range b.Skipped {
		r.skipped(why, n, b.SkippedIDs[why]...)
	}
}

// Opts configures Run.
type Opts struct {
	// BatchSize is how many jobs one transaction lists and acts on
	// (DefaultBatchSize when 0).
	BatchSize int
	// By is the operator, recorded with the action ("" when unknown).
	By string
}

// Run does a to every job f matches, through River's JobListTx and
// JobRetryTx/JobCancelTx, in batches of one transaction each, and records
// it in operator_action: the row first, with nothing done, then each
// batch's counts in the batch's own transaction, the last batch marking it
// finished. Stopped half way (an error, a signal, a crash), the row holds
// exactly the batches that committed. f must be valid for a (Validate).
//
// A retry batch runs in REPEATABLE READ: a job that changed after the batch
// listed it (retried and worked by someone else meanwhile) fails its update
// instead of being retried a second time, and is skipped, as is a job whose
// retry would duplicate a live unique job.
func Run(ctx context.Context, client *Client, st Store, a Action, f Filter, o Opts) (Result, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	id, err := st.StartOperatorAction(ctx, string(a), f.Record(a), o.By)
	if err != nil {
		return Result{}, fmt.Errorf("bulk: %s: %w", a, err)
	}
	res := Result{ActionID: id}
	txOpts := pgx.TxOptions{}
	if a == Retry {
		txOpts.IsoLevel = pgx.RepeatableRead
	}
	params := f.listParams(a).First(o.BatchSize)
	for {
		var batch Result
		var last bool
		var cursor *river.JobListCursor
		err := st.InTxWith(ctx, txOpts, func(tx pgx.Tx) error {
			batch = Result{}
			list, err := client.JobListTx(ctx, tx, params)
			if err != nil {
				return fmt.Errorf("list jobs: %w", err)
			}
			for _, j := range list.Jobs {
				batch.Matched++
				if err := act(ctx, client, tx, a, j, &batch); err != nil {
					return err
				}
			}
			last, cursor = len(list.Jobs) < o.BatchSize, list.LastCursor
			return st.AddOperatorActionBatchTx(ctx, tx, id, batch.Matched, batch.Acted, last)
		})
		if err != nil {
			return res, fmt.Errorf("bulk: %s: stopped after %d of the matching jobs, %d done, as operator_action %d records: %w",
				a, res.Matched, res.Acted, id, err)
		}
		res.add(batch)
		if last {
			return res, nil
		}
		params = params.After(cursor)
	}
}

// act retries or cancels job j in tx, counting the outcome in b.
func act(ctx context.Context, client *Client, tx pgx.Tx, a Action, j *rivertype.JobRow, b *Result) error {
	if a == Cancel {
		row, err := client.JobCancelTx(ctx, tx, j.ID)
		switch {
		case errors.Is(err, river.ErrNotFound):
			b.skip(SkipChanged, j.ID)
		case err != nil:
			return fmt.Errorf("cancel job %d: %w", j.ID, err)
		case row.State == rivertype.JobStateCancelled:
			b.Acted++
		case row.State == rivertype.JobStateRunning:
			b.Acted++
			b.Running++
		default: // it finished before it could be cancelled
			b.skip(SkipChanged, j.ID)
		}
		return nil
	}
	// A savepoint per job: a refused retry must not abort the batch.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("retry job %d: savepoint: %w", j.ID, err)
	}
	row, err := client.JobRetryTx(ctx, sp, j.ID)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("retry job %d: release savepoint: %w", j.ID, err)
		}
		if row.State == rivertype.JobStateAvailable {
			b.Acted++
		} else {
			b.skip(SkipChanged, j.ID) // running: River leaves it alone
		}
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation:
		b.skip(SkipDuplicate, j.ID)
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.SerializationFailure, errors.Is(err, river.ErrNotFound):
		b.skip(SkipChanged, j.ID)
	default:
		_ = sp.Rollback(ctx)
		return fmt.Errorf("retry job %d: %w", j.ID, err)
	}
	if err := sp.Rollback(ctx); err != nil {
		return fmt.Errorf("retry job %d: roll back to savepoint: %w", j.ID, err)
	}
	return nil
}
