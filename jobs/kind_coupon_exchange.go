package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/coupon"
	"github.com/tidemark/tidemark/store"
)

// CouponExchangeArgs is the exchange job (EXCHANGE_COUPON_JOB): replace the unused,
// unexchanged issues of an expired coupon with a new compensation coupon and
// notify the members. Every field but ChunkSize and Rerun is an identifying
// parameter: EnqueueCouponExchange refuses the same parameters while a run is
// queued or running, and after one completed until a rerun (a run that
// failed for good may be run again).
type CouponExchangeArgs struct {
	Name            string `json:"name" river:"unique"`
	Description     string `json:"description" river:"unique"`
	AmountType      string `json:"amount_type" river:"unique"`
	Amount          int    `json:"amount" river:"unique"`
	ExpiredCouponID int64  `json:"expired_coupon_id" river:"unique"`
	// ChunkSize is how many issues one transaction exchanges (default 500).
	ChunkSize int `json:"chunk_size,omitempty"`
	// Rerun numbers a run started with --rerun after one with the same
	// parameters completed (1, 2, …): it exchanges the issues still left
	// unexchanged for a compensation coupon of its own.
	Rerun int `json:"rerun,omitempty" river:"unique"`
}

// run is the exchange's run identity: its five identifying parameters, as
// tidemark_run_identity keeps them.
func (a CouponExchangeArgs) run() runIdentity {
	return runIdentity{
		kind: a.Kind(),
		identity: map[string]any{"name": a.Name, "description": a.Description, "amount_type": a.AmountType,
			"amount": a.Amount, "expired_coupon_id": a.ExpiredCouponID},
		build: func(n int) river.JobArgs {
			a.Rerun = n
			return a
		},
	}
}

// EnqueueCouponExchange starts the exchange a describes, or refuses it with
// *RunActiveError or *RunCompletedError (the latter unless rerun).
func EnqueueCouponExchange(ctx context.Context, client *Client, st *store.Store, a CouponExchangeArgs, rerun bool) (*rivertype.JobRow, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return enqueueRun(ctx, client, st, a.run(), rerun)
}

// Kind is coupon_exchange.
func (CouponExchangeArgs) Kind() string { return "coupon_exchange" }

// InsertOpts makes the job unique on its identifying parameters.
func (CouponExchangeArgs) InsertOpts() river.InsertOpts {
	return uniqueByArgs(QueueDefault, 10)
}

// Validate checks the arguments.
func (a CouponExchangeArgs) Validate() error {
	if err := coupon.ValidateTerms(a.Name, a.Description, a.AmountType, a.Amount); err != nil {
		return err
	}
	if a.ExpiredCouponID <= 0 {
		return fmt.Errorf("expired-coupon-id: want a positive id, got %d", a.ExpiredCouponID)
	}
	if a.ChunkSize < 0 || a.ChunkSize > 10000 {
		return fmt.Errorf("chunk size: want 1 to 10000, got %d", a.ChunkSize)
	}
	return nil
}

// ExchangeCouponCode is the code of the compensation coupon exchange job
// jobID creates: derived from the job, so a retry finds the coupon its earlier
// attempt created instead of making another.
func ExchangeCouponCode(jobID int64) string { return fmt.Sprintf("EXCH-%d", jobID) }

// Exchange steps, in order.
const (
	StepCreateCoupon = "create_coupon"
	StepExchange     = "exchange"
	StepNotify       = "notify"
)

// exchangeCursor is step 2's progress, saved in each chunk's transaction.
type exchangeCursor struct {
	LastIssueID int64 `json:"last_issue_id"`
	Exchanged   int   `json:"exchanged"`
	Chunks      int   `json:"chunks"`
}

// CouponExchangeOutput is recorded on the job when it completes.
type CouponExchangeOutput struct {
	CouponCode string `json:"coupon_code"`
	CouponID   int64  `json:"coupon_id"`
	// Issued counts every holder of the compensation coupon (all attempts).
	Issued int `json:"issued"`
	// ChunksThisAttempt and ExchangedThisAttempt show how much the last
	// attempt had left to do when it started.
	ChunksThisAttempt    int `json:"chunks_this_attempt"`
	ExchangedThisAttempt int `json:"exchanged_this_attempt"`
	NotifiedThisAttempt  int `json:"notified_this_attempt"`
}

// CouponExchangeWorker runs the three steps as River resumable steps. Each
// step's writes commit in the same transaction as its checkpoint (step 2: each
// chunk with its cursor), so a crash anywhere resumes at the step — and the
// chunk — that did not commit. Nothing is done twice: the coupon's code is
// derived from the job id, a chunk only takes issues not yet exchanged, and
// issues and notifications are unique per (member, coupon).
type CouponExchangeWorker struct {
	worker[CouponExchangeArgs]
	// afterChunk, if set (tests), runs after each committed chunk; an error
	// fails the attempt there.
	afterChunk func(chunk int) error
	// progressEvery bounds how often a chunk also writes the progress.
	progressEvery time.Duration
}

// NewCouponExchangeWorker returns the coupon exchange worker. An attempt is
// at most 60 s; a longer exchange continues on the next attempt from its
// cursor.
func NewCouponExchangeWorker(deps Deps) *CouponExchangeWorker {
	return &CouponExchangeWorker{worker: worker[CouponExchangeArgs]{deps: deps, timeout: time.Minute},
		progressEvery: DefaultProgressEvery}
}

// Work runs the exchange.
func (w *CouponExchangeWorker) Work(ctx context.Context, job *river.Job[CouponExchangeArgs]) error {
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("coupon_exchange: %w", err))
	}
	if err := refuseCompletedRun(ctx, w.deps.Store, a.run(), job.ID, a.Rerun); err != nil {
		return err
	}
	size := a.ChunkSize
	if size == 0 {
		size = 500
	}
	st := w.deps.Store
	out := CouponExchangeOutput{CouponCode: ExchangeCouponCode(job.ID)}
	// failed notes a step's error (River then fails the job with it and runs
	// no later step), so that no output is recorded for a failed attempt.
	failed := false
	check := func(err error) error {
		err = stepEnd(ctx, err)
		failed = failed || err != nil || isStale(ctx)
		return err
	}

	river.ResumableStep(ctx, StepCreateCoupon, nil, func(ctx context.Context) error {
		if isStale(ctx) {
			return nil
		}
		if _, err := st.CouponByID(ctx, a.ExpiredCouponID); err != nil {
			return check(river.JobCancel(fmt.Errorf("coupon_exchange: expired coupon %d: %w", a.ExpiredCouponID, err)))
		}
		err := fenced(ctx, st, func(tx pgx.Tx) error {
			_, err := st.EnsureExchangeCouponTx(ctx, tx, store.NewCoupon{Code: out.CouponCode, Name: a.Name,
				Description: a.Description, AmountType: a.AmountType, Amount: a.Amount}, a.ExpiredCouponID)
			if err != nil {
				return err
			}
			_, err = river.ResumableSetStepTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
		if err == nil {
			w.deps.Logger.InfoContext(ctx, "coupon_exchange: compensation coupon ready", "coupon", out.CouponCode,
				"expired_coupon_id", a.ExpiredCouponID)
		}
		return check(err)
	})

	river.ResumableStepCursor(ctx, StepExchange, nil, func(ctx context.Context, cur exchangeCursor) error {
		if isStale(ctx) {
			return nil
		}
		c, err := st.CouponByCode(ctx, out.CouponCode)
		if err != nil {
			return check(err)
		}
		remaining, err := st.CountExchangeableIssues(ctx, a.ExpiredCouponID, cur.LastIssueID)
		if err != nil {
			return check(err)
		}
		prog := newProgressRecorder(job.ID, "issues", w.progressEvery, int64(cur.Exchanged), int64(cur.Exchanged)+remaining)
		for {
			var ch store.ExchangeChunk
			var next exchangeCursor
			err := fenced(ctx, st, func(tx pgx.Tx) error {
				var err error
				if ch, err = st.ExchangeChunkTx(ctx, tx, a.ExpiredCouponID, c.ID, cur.LastIssueID, size); err != nil {
					return err
				}
				next = exchangeCursor{LastIssueID: ch.LastIssueID, Exchanged: cur.Exchanged + ch.Exchanged, Chunks: cur.Chunks + 1}
				if _, err := river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, next); err != nil {
					return err
				}
				return prog.recordTx(ctx, tx, int64(next.Exchanged), map[string]int64{"chunks": int64(next.Chunks)})
			})
			if store.IsLockTimeout(err) && ctx.Err() == nil {
				// Rolled back whole, the cursor where it was: the same chunk
				// again, in the same attempt.
				w.deps.Logger.WarnContext(ctx, "coupon_exchange: chunk waited too long for a lock; trying it again",
					"coupon", out.CouponCode, "after_issue", cur.LastIssueID, "err", err)
				continue
			}
			if err != nil {
				return check(err)
			}
			cur = next
			out.ChunksThisAttempt++
			out.ExchangedThisAttempt += ch.Exchanged
			if w.afterChunk != nil {
				if err := w.afterChunk(out.ChunksThisAttempt); err != nil {
					return check(err)
				}
			}
			if ch.Exchanged < size {
				w.deps.Logger.InfoContext(ctx, "coupon_exchange: issues exchanged", "coupon", out.CouponCode,
					"exchanged", cur.Exchanged, "chunks", cur.Chunks, "this_attempt", out.ExchangedThisAttempt)
				return nil
			}
		}
	})

	river.ResumableStep(ctx, StepNotify, nil, func(ctx context.Context) error {
		if isStale(ctx) {
			return nil
		}
		c, err := st.CouponByCode(ctx, out.CouponCode)
		if err != nil {
			return check(err)
		}
		msg := fmt.Sprintf("Your coupon #%d has been exchanged for %q (%s).", a.ExpiredCouponID, a.Name, c.Code)
		err = fenced(ctx, st, func(tx pgx.Tx) error {
			n, err := st.NotifyExchangedTx(ctx, tx, c.ID, msg)
			if err != nil {
				return err
			}
			out.NotifiedThisAttempt = n
			_, err = river.ResumableSetStepTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
		if err == nil {
			w.deps.Logger.InfoContext(ctx, "coupon_exchange: members notified", "coupon", out.CouponCode,
				"notified", out.NotifiedThisAttempt)
		}
		return check(err)
	})

	// Reached even when a step failed; River then fails the job with that
	// step's error, so return nil and record nothing. So is a stale attempt.
	if failed || isStale(ctx) {
		return nil
	}
	c, err := st.CouponByCode(ctx, out.CouponCode)
	if err != nil {
		return err
	}
	out.CouponID = c.ID
	if out.Issued, err = st.CouponIssueCount(ctx, c.ID); err != nil {
		return err
	}
	return recordOutput(ctx, st, job.ID, out)
}
