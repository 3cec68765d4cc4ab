package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/internal/combine"
	"github.com/tidemark/tidemark/joblog"
	"github.com/tidemark/tidemark/store"
)

// A worker that was only frozen (a GC pause, a VM pause, a partition,
// SIGSTOP) when River rescued its job wakes up and carries on. Nothing such
// a stale attempt writes may change what the attempt that took over did:
//
//   - Every attempt of a leased kind claims its job's lease (job_lease) as it
//     starts; every transaction it writes in checks the lease first (fenceTx)
//     and rolls back if a later attempt claimed it. A later claim waits for
//     an earlier attempt's open transaction, which Postgres ends within
//     DB_IDLE_TX_TIMEOUT once its worker froze, so none commits after it.
//   - An attempt writes its output only in such a transaction, never through
//     River's lazy RecordOutput: River merges an attempt's metadata into its
//     job whatever the job's state when the attempt ends.
//   - When an attempt ends it checks that it still owns the job. A stale one
//     drops the lines it logged to the job's log, and does not return to
//     River until River can no longer run the job within a margin: River
//     writes an attempt's end only to a running job, so its end then changes
//     nothing. It is logged and counted (tidemark_jobs_stale_attempts_total).
//
// Kinds whose writes are single statements that a stale attempt may make as
// well as a fresh one claim no lease: therapy_stats recomputes a user-month
// from the source rows in one statement (and checks, right before it, that
// River still runs the attempt, so not even aggregated_at changes);
// coupon_issue_persist writes its row ON CONFLICT DO NOTHING; order_submit
// moves its row from status to status with compare-and-set statements and
// looks its order up before any POST. Their end checks that River still
// runs their attempt.

// unleasedArgs is the args of a kind that claims no lease (see above): the
// kind says so in its own file, and NewClient hands the fence the set.
type unleasedArgs interface{ unleased() }

// staleMargin is how far in the future a stale attempt's job must be
// scheduled, if it is not finished, before the stale attempt ends: River
// then cannot fetch it again before the attempt's end is written.
const staleMargin = 5 * time.Second

// staleWaitMax bounds how long a stale attempt waits for its job to settle.
const staleWaitMax = time.Hour

// attemptState is the attempt a job's work context belongs to.
type attemptState struct {
	store.Attempt
	leased bool
	stale  atomic.Bool
	// proven is set by a kind whose last write committed in a transaction
	// that found River still running the attempt: an end without error then
	// needs no check of its own (see owns).
	proven atomic.Bool
}

type attemptKey struct{}

func attemptOf(ctx context.Context) (*attemptState, bool) {
	s, ok := ctx.Value(attemptKey{}).(*attemptState)
	return s, ok
}

// fenceTx fences a write: in tx, before anything else, it checks that the
// attempt working ctx's job still owns it, holding off a later attempt's
// claim until tx ends. It returns store.ErrStale (and marks the attempt
// stale) when a later attempt owns the job: the caller rolls tx back. Outside
// an attempt, or for an unleased kind, it checks nothing.
func fenceTx(ctx context.Context, st *store.Store, tx pgx.Tx) error {
	s, ok := attemptOf(ctx)
	if !ok || !s.leased {
		return nil
	}
	err := st.CheckLeaseTx(ctx, tx, s.Attempt)
	if errors.Is(err, store.ErrStale) {
		s.stale.Store(true)
	}
	return err
}

// isStale reports whether the attempt working ctx's job is known to be stale.
func isStale(ctx context.Context) bool {
	s, ok := attemptOf(ctx)
	return ok && s.stale.Load()
}

// fenced is Store.InTx with fenceTx first.
func fenced(ctx context.Context, st *store.Store, fn func(tx pgx.Tx) error) error {
	return st.InTx(ctx, func(tx pgx.Tx) error {
		if err := fenceTx(ctx, st, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// recordOutput writes a job's output now, in a fenced transaction: a stale
// attempt's output never reaches the job. A job this connection cannot see
// (deleted, or inserted in a test's transaction) gets it River's lazy way,
// which writes nothing where no row is.
func recordOutput(ctx context.Context, st *store.Store, jobID int64, out any) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	err := fenced(ctx, st, func(tx pgx.Tx) error {
		_, err := client.JobUpdateTx(ctx, tx, jobID, &river.JobUpdateParams{Output: out})
		return err
	})
	if errors.Is(err, rivertype.ErrNotFound) {
		return river.RecordOutput(ctx, out)
	}
	if err != nil {
		return fmt.Errorf("jobs: record output of job %d: %w", jobID, err)
	}
	return nil
}

// stepEnd is what a resumable step returns for err: nil when the attempt is
// stale, or turns out to be, so that River records nothing of the step (it
// writes a failed step's cursors whatever the job's state); err otherwise.
func (f *fence) stepEnd(ctx context.Context, err error) error {
	if err == nil || isStale(ctx) {
		return nilIfStale(ctx, err)
	}
	if s, ok := attemptOf(ctx); ok && !f.owns(ctx, s) {
		s.stale.Store(true)
		return nil
	}
	return err
}

func nilIfStale(ctx context.Context, err error) error {
	if isStale(ctx) || errors.Is(err, store.ErrStale) {
		return nil
	}
	return err
}

// fence is the River middleware that claims, checks and ends attempts (see
// the comment at the top of this file).
type fence struct {
	river.MiddlewareDefaults
	deps Deps
	// unleased are the kinds that claim no lease, by name.
	unleased map[string]bool
	// claim, held and running batch the lease claims and the end checks
	// of concurrent attempts into one statement each.
	claim, held, running *combine.Combiner[store.Attempt]
	// waitMax bounds how long a stale attempt waits for its job to settle
	// (staleWaitMax).
	waitMax time.Duration
}

func newFence(deps Deps, unleased map[string]bool) *fence {
	f := &fence{deps: deps, unleased: unleased, waitMax: staleWaitMax}
	batch := func(check func(context.Context, []store.Attempt) (map[int64]bool, error)) *combine.Combiner[store.Attempt] {
		return combine.New(2, 500, func(ctx context.Context, as []store.Attempt) error {
			owned, err := check(ctx, as)
			if err != nil {
				return err
			}
			for _, a := range as {
				if !owned[a.JobID] {
					// The batch fails; each attempt is checked again on its
					// own and gets its own answer.
					return fmt.Errorf("jobs: job %d attempt %d: %w", a.JobID, a.Attempt, store.ErrStale)
				}
			}
			return nil
		}).WithFlushTimeout(10 * time.Second)
	}
	f.claim = batch(deps.Store.ClaimLeases)
	f.held = batch(deps.Store.HeldLeases)
	f.running = batch(deps.Store.RunningAttempts)
	return f
}

type fenceKey struct{}

// Work claims the attempt's lease, runs it with its job-log lines held back,
// and ends it: as it is if it still owns the job, without a trace if not.
func (f *fence) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	s := &attemptState{Attempt: store.Attempt{JobID: job.ID, Attempt: job.Attempt}, leased: !f.unleased[job.Kind]}
	ctx = context.WithValue(context.WithValue(ctx, attemptKey{}, s), fenceKey{}, f)
	ctx, release := joblog.Hold(ctx)
	if s.leased {
		if err := f.claim.Do(ctx, s.Attempt); errors.Is(err, store.ErrStale) {
			s.stale.Store(true)
		} else if err != nil {
			release(true)
			return err
		}
	}
	var err error
	if !s.stale.Load() {
		err = doInner(ctx)
	}
	if !s.stale.Load() && (err == nil && s.proven.Load() || f.owns(ctx, s)) {
		release(true)
		return err
	}
	release(false)
	f.endStale(ctx, job, err)
	return nil
}

// owns reports whether s still owns its job. An attempt that proved it
// (proven: therapy_stats, whose one statement checks that River still runs
// the attempt) and ends without error is not asked again: only a rescue in
// the moment between that commit and River's completion could make it
// stale, and its completion then marks done a job whose later attempt would
// recompute the same user-month from the same rows (commits.md).
//
// When ownership cannot be read
// (Postgres away), it answers true: the attempt's end is then what River
// would write without the fence.
func (f *fence) owns(ctx context.Context, s *attemptState) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	check := f.running
	if s.leased {
		check = f.held
	}
	return !errors.Is(check.Do(cctx, s.Attempt), store.ErrStale)
}

// endStale ends a stale attempt: logged (to the process's log, not the
// job's), counted, and returned to River only once River can no longer run
// the job within staleMargin, so that the end it writes changes nothing.
func (f *fence) endStale(ctx context.Context, job *rivertype.JobRow, workErr error) {
	log := f.deps.Logger.With("kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt)
	log.WarnContext(context.WithoutCancel(context.Background()), "jobs: stale attempt: a later attempt owns the job; ending without writing",
		"work_err", errString(workErr))
	if f.deps.StaleAttempt != nil {
		f.deps.StaleAttempt(job.Kind)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.waitMax)
	defer cancel()
	for {
		settled, err := f.deps.Store.JobSettled(wctx, job.ID, staleMargin)
		if err == nil && settled {
			return
		}
		select {
		case <-wctx.Done():
			log.ErrorContext(context.Background(), "jobs: stale attempt's job did not settle; ending anyway", "waited", f.waitMax)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ownsNow returns store.ErrStale unless the attempt working ctx's job still
// owns it: the check before a write no transaction can fence (Redis). It
// leaves a window, from the check to the write, which the caller's write must
// tolerate.
func ownsNow(ctx context.Context) error {
	f, ok := fenceOf(ctx)
	s, sok := attemptOf(ctx)
	if !ok || !sok {
		return nil
	}
	if s.stale.Load() || !f.owns(ctx, s) {
		s.stale.Store(true)
		return fmt.Errorf("jobs: job %d attempt %d: %w", s.JobID, s.Attempt, store.ErrStale)
	}
	return nil
}

// fenceOf is the fence running ctx's attempt, if any.
func fenceOf(ctx context.Context) (*fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(*fence)
	return f, ok
}

// stepEnd is (*fence).stepEnd of ctx's fence, or err outside one.
func stepEnd(ctx context.Context, err error) error {
	if f, ok := fenceOf(ctx); ok {
		return f.stepEnd(ctx, err)
	}
	return err
}

var _ rivertype.WorkerMiddleware = (*fence)(nil)
