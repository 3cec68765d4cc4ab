package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// Settlement defaults, overridable per run through the job's args.
const (
	// DefaultCommitInterval is how many due rows step 1 reads per chunk
	// (one transaction each).
	DefaultCommitInterval = 1000
	// MaxCommitInterval bounds a chunk so one transaction stays short.
	MaxCommitInterval = 100_000
	// DefaultSkipLimit is how many rows a run may skip before it fails.
	DefaultSkipLimit = 100
)

// Triggers recorded on point_settlement jobs, for audit.
const (
	SettlementTriggerCLI     = "cli"
	SettlementTriggerDaily   = "daily"
	SettlementTriggerCatchUp = "catch_up"
	// SettlementTriggerBackfill marks a settlement run started by `enqueue
	// backfill settlement`.
	SettlementTriggerBackfill = "backfill"
)

// settlementRunDateKey is PointSettlementArgs.RunDate's JSON key, read by
// SQL (the date's active run; an index of the ledger migration).
const settlementRunDateKey = "run_date"

// PointSettlementArgs is one run of the point settlement for business date
// RunDate (Spring Batch's job instance + execution). Its identity is (RunDate,
// Run): Run is 1 for the first run of a date and one more for each later run
// (--rerun, or a new run after a failed one), assigned under a per-date
// advisory lock by EnqueueSettlementTx, which is the only way runs are started.
type PointSettlementArgs struct {
	RunDate string `json:"run_date" river:"unique"` // settlementRunDateKey
	Run     int    `json:"run" river:"unique"`
	// Rerun marks a run started with --rerun on a date already settled.
	Rerun bool `json:"rerun,omitempty"`
	// Until continues a catch-up: once RunDate is settled, the run starts
	// the next unsettled date up to Until, so missed days run oldest first.
	Until   string `json:"until,omitempty"`
	Trigger string `json:"trigger"`
	// CommitInterval is the chunk size of step 1 (0: DefaultCommitInterval).
	CommitInterval int `json:"commit_interval,omitempty"`
	// SkipLimit is how many rows may be skipped before the run fails (nil:
	// DefaultSkipLimit).
	SkipLimit *int `json:"skip_limit,omitempty"`
}

// Kind is point_settlement.
func (PointSettlementArgs) Kind() string { return "point_settlement" }

// InsertOpts makes (run date, run) unique in every state but cancelled and
// discarded: a second insert of the same run is a no-op even if it got past
// the advisory lock.
func (PointSettlementArgs) InsertOpts() river.InsertOpts {
	return uniqueByArgs(QueueDefault, 5)
}

// SettlementCounts are a run's Spring Batch step counts. read = written +
// skipped + not_ready; chunks are committed chunks, rollbacks failed ones.
type SettlementCounts struct {
	Read      int64 `json:"read"`
	Written   int64 `json:"written"`
	Skipped   int64 `json:"skipped"`
	NotReady  int64 `json:"not_ready"`
	Chunks    int64 `json:"chunks"`
	Rollbacks int64 `json:"rollbacks"`
}

// progressCounts are the counts a run's progress carries.
func (c SettlementCounts) progressCounts() map[string]int64 {
	return map[string]int64{"read": c.Read, "written": c.Written, "skipped": c.Skipped,
		"not_ready": c.NotReady, "chunks": c.Chunks, "rollbacks": c.Rollbacks}
}

// SettlementCursor is step 1's resumable cursor, saved in the transaction of
// the chunk it follows. Bound is the largest ledger id when the step began (a
// resumed attempt keeps it), After the last id a committed chunk covered; the
// counts so far travel with it so a resumed run reports whole-run totals.
type SettlementCursor struct {
	Bound int64 `json:"bound"`
	After int64 `json:"after"`
	SettlementCounts
}

// SettlementOutput is what a run records on its job (its output, written in a
// fenced transaction); batch_job_execution shows the counts.
type SettlementOutput struct {
	RunDate string `json:"run_date"`
	Run     int    `json:"run"`
	SettlementCounts
	Earned    int64 `json:"earned"`
	Used      int64 `json:"used"`
	Expired   int64 `json:"expired"`
	ItemCount int   `json:"item_count"`
	// CollectMillis is how long step 1 took in the attempt that finished it.
	CollectMillis int64 `json:"collect_ms"`
	// NextRunDate is the catch-up run this one started, if any.
	NextRunDate string `json:"next_run_date,omitempty"`
}

// PointSettlementWorker runs the settlement for one date in two resumable
// steps: collect (chunked, cursor saved with each chunk) and settle.
type PointSettlementWorker struct {
	worker[PointSettlementArgs]
	// budget is how long step 1 works in one attempt before it snoozes and
	// resumes from its cursor in the next, inside the job's Timeout.
	budget time.Duration
	// afterChunk, if set, is called after each committed chunk (tests).
	afterChunk func(ctx context.Context, cursor SettlementCursor)
	// progressEvery bounds how often a chunk also writes the run's progress.
	progressEvery time.Duration
}

// NewPointSettlementWorker returns the worker. An attempt is bounded to a
// minute: a longer run snoozes after its budget and resumes from its cursor;
// a killed one is rescued and does the same.
func NewPointSettlementWorker(deps Deps) *PointSettlementWorker {
	return &PointSettlementWorker{worker: worker[PointSettlementArgs]{deps: deps, timeout: time.Minute},
		budget: 40 * time.Second, progressEvery: DefaultProgressEvery}
}

// errSkipLimit fails a run whose skips exceed its limit.
var errSkipLimit = errors.New("skip limit exceeded")

// Work runs the settlement.
func (w *PointSettlementWorker) Work(ctx context.Context, job *river.Job[PointSettlementArgs]) error {
	a := job.Args
	_, untilErr := calendar.ParseDate(a.Until)
	if _, err := calendar.ParseDate(a.RunDate); err != nil || a.Run < 1 || a.CommitInterval < 0 || a.CommitInterval > MaxCommitInterval ||
		(a.SkipLimit != nil && *a.SkipLimit < 0) || (a.Until != "" && untilErr != nil) {
		return river.JobCancel(fmt.Errorf("point_settlement: invalid args %+v", a))
	}
	interval := a.CommitInterval
	if interval == 0 {
		interval = DefaultCommitInterval
	}
	skipLimit := int64(DefaultSkipLimit)
	if a.SkipLimit != nil {
		skipLimit = int64(*a.SkipLimit)
	}

	// Counts of an earlier attempt that finished step 1 come from its output.
	out := SettlementOutput{RunDate: a.RunDate, Run: a.Run}
	var meta struct {
		Output *SettlementOutput `json:"output"`
	}
	if json.Unmarshal(job.Metadata, &meta) == nil && meta.Output != nil {
		out.SettlementCounts, out.CollectMillis = meta.Output.SettlementCounts, meta.Output.CollectMillis
	}

	river.ResumableStepCursor(ctx, "collect", nil, func(ctx context.Context, cur SettlementCursor) error {
		start := time.Now()
		cur, err := w.collect(ctx, job, cur, interval, skipLimit)
		if isStale(ctx) {
			return nil
		}
		out.SettlementCounts = cur.SettlementCounts
		out.CollectMillis = time.Since(start).Milliseconds()
		// The step's counts, whether it finished or failed, in a fenced
		// transaction of their own: a later attempt that only settles reads
		// them here, and a stale attempt's counts never reach the job.
		if errors.Is(err, store.ErrCommitUnknown) {
			return stepEnd(ctx, err)
		}
		if rerr := recordOutput(ctx, w.deps.Store, job.ID, out); rerr != nil && err == nil {
			err = rerr
		}
		return stepEnd(ctx, err)
	})
	river.ResumableStep(ctx, "settle", nil, func(ctx context.Context) error {
		if isStale(ctx) {
			return nil
		}
		return stepEnd(ctx, w.settle(ctx, job, &out))
	})
	return nil
}

// collect is step 1: chunks of due rows, each one transaction that writes the
// chunk's daily_batch and skip rows, marks them processed and saves the cursor.
func (w *PointSettlementWorker) collect(ctx context.Context, job *river.Job[PointSettlementArgs], cur SettlementCursor,
	interval int, skipLimit int64,
) (SettlementCursor, error) {
	runDate := job.Args.RunDate
	if cur.Bound == 0 {
		bound, err := w.deps.Store.MaxLedgerID(ctx)
		if err != nil {
			return cur, err
		}
		cur.Bound = bound
		// Kept if this attempt ends before its first chunk commits.
		if err := river.ResumableSetCursor(ctx, cur); err != nil {
			return cur, err
		}
	}
	// The total is the rows read so far and those still due below the bound:
	// one count on the due index per attempt.
	remaining, err := w.deps.Store.CountDueRows(ctx, runDate, cur.After, cur.Bound)
	if err != nil {
		return cur, err
	}
	prog := newProgressRecorder(job.ID, "rows", w.progressEvery, cur.Read, cur.Read+remaining)
	w.deps.Logger.InfoContext(ctx, "point_settlement: collecting due rows", "run_date", runDate,
		"after", cur.After, "bound", cur.Bound, "chunks", cur.Chunks, "remaining", remaining)
	started := time.Now()
	for chunks := 0; ; chunks++ {
		if chunks > 0 && time.Since(started) > w.budget {
			w.deps.Logger.InfoContext(ctx, "point_settlement: budget spent, resuming from cursor",
				"run_date", runDate, "job", job.ID, "after", cur.After, "bound", cur.Bound)
			return cur, river.JobSnooze(0)
		}
		var next SettlementCursor
		done := false
		err := fenced(ctx, w.deps.Store, func(tx pgx.Tx) error {
			rows, err := w.deps.Store.ReadDueChunk(ctx, tx, runDate, cur.After, cur.Bound, interval)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				done = true
				return nil
			}
			next = cur
			written := make([]int64, 0, len(rows))
			var skipped []store.SkippedRow
			for _, r := range rows {
				next.Read++
				switch {
				case !r.Ready:
					next.NotReady++ // left due: collected by a run after it is marked ready
				case !r.PriorEarn:
					next.Skipped++
					skipped = append(skipped, store.SkippedRow{LedgerID: r.ID,
						Reason: fmt.Sprintf("USE of %d by member %d with no earlier EARN", r.Amount, r.MemberID)})
					if next.Skipped > skipLimit {
						return fmt.Errorf("%w: row %d is skip %d, limit %d", errSkipLimit, r.ID, next.Skipped, skipLimit)
					}
				default:
					written = append(written, r.ID)
					next.Written++
				}
			}
			nw, ns, err := w.deps.Store.WriteChunk(ctx, tx, runDate, job.ID, written, skipped)
			if err != nil {
				return err
			}
			// A row deferred between read and write is no longer due for
			// this run: it was not read for it after all.
			next.Read -= int64(len(written)) - nw + int64(len(skipped)) - ns
			next.Written -= int64(len(written)) - nw
			next.Skipped -= int64(len(skipped)) - ns
			next.After = rows[len(rows)-1].ID
			next.Chunks++
			updated, err := river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, next)
			if err != nil {
				return fmt.Errorf("point_settlement: save cursor: %w", err)
			}
			job.JobRow = updated.JobRow
			// In the chunk's transaction: the progress never counts a
			// chunk that rolled back.
			return prog.recordTx(ctx, tx, next.Read, next.SettlementCounts.progressCounts())
		})
		if errors.Is(err, store.ErrStale) {
			return cur, err // a later attempt owns the run; it resumes from the durable cursor
		}
		if store.IsLockTimeout(err) && ctx.Err() == nil {
			// A lock held longer than DB_LOCK_TIMEOUT (the chunk rolled
			// back whole, its rows and cursor as they were): the same chunk
			// again, in the same attempt.
			w.deps.Logger.WarnContext(ctx, "point_settlement: chunk waited too long for a lock; trying it again",
				"run_date", runDate, "after", cur.After, "err", err)
			continue
		}
		if errors.Is(err, store.ErrCommitUnknown) {
			// The chunk may have committed with its cursor, or not. Record
			// nothing: the next attempt resumes from whichever cursor is
			// durable (River writes a cursor back only when one is set
			// after the last one saved in a transaction).
			return cur, fmt.Errorf("point_settlement %s: chunk after id %d: %w", runDate, cur.After, err)
		}
		if err != nil {
			// The chunk rolled back: its rows stay due, the cursor where it
			// was. cur is durable (every chunk commits synchronously), so
			// saving it with one more rollback loses nothing.
			cur.Rollbacks++
			if serr := river.ResumableSetCursor(ctx, cur); serr != nil {
				err = errors.Join(err, serr)
			}
			if errors.Is(err, errSkipLimit) {
				// No retry can fix the data: fail now. Fix the rows, then
				// `enqueue retry --kind point_settlement --state cancelled`
				// resumes this run from its cursor.
				return cur, river.JobCancel(fmt.Errorf("point_settlement %s: %w", runDate, err))
			}
			return cur, fmt.Errorf("point_settlement %s: chunk after id %d: %w", runDate, cur.After, err)
		}
		if done {
			w.deps.Logger.InfoContext(ctx, "point_settlement: collected", "run_date", runDate, "read", cur.Read,
				"written", cur.Written, "skipped", cur.Skipped, "not_ready", cur.NotReady, "chunks", cur.Chunks)
			return cur, nil
		}
		cur = next
		if w.afterChunk != nil {
			w.afterChunk(ctx, cur)
		}
	}
}

// settle is step 2: recompute the date's settlement from daily_batch and, in
// the same transaction, continue a catch-up and complete the job.
func (w *PointSettlementWorker) settle(ctx context.Context, job *river.Job[PointSettlementArgs], out *SettlementOutput) error {
	a := job.Args
	client := river.ClientFromContext[pgx.Tx](ctx)
	return fenced(ctx, w.deps.Store, func(tx pgx.Tx) error {
		if err := w.checkRecord(ctx, tx, job, out); err != nil {
			return err
		}
		st, err := w.deps.Store.SettleDayTx(ctx, tx, a.RunDate, job.ID, a.Run)
		if err != nil {
			return err
		}
		out.Earned, out.Used, out.Expired, out.ItemCount = st.Earned, st.Used, st.Expired, st.ItemCount
		if a.Until != "" && a.Until > a.RunDate {
			from, err := calendar.DayAfter(a.RunDate)
			if err != nil {
				return err
			}
			next, err := continueCatchUp(ctx, client, w.deps.Store, tx, from, a.Until)
			if err != nil {
				return err
			}
			out.NextRunDate = next
		}
		// The run's record, with its completion: never a stale attempt's.
		if _, err := client.JobUpdateTx(ctx, tx, job.ID, &river.JobUpdateParams{Output: out}); err != nil {
			return fmt.Errorf("point_settlement: record output of job %d: %w", job.ID, err)
		}
		w.deps.Logger.InfoContext(ctx, "point_settlement settled", "run_date", a.RunDate, "run", a.Run, "job", job.ID,
			"read", out.Read, "written", out.Written, "skipped", out.Skipped, "not_ready", out.NotReady,
			"chunks", out.Chunks, "rollbacks", out.Rollbacks, "next", out.NextRunDate)
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("point_settlement: complete job %d: %w", job.ID, err)
		}
		return nil
	})
}

// errRecord fails a run whose record does not add up.
var errRecord = errors.New("run record does not add up")

// checkRecord refuses to settle a run whose counts contradict themselves or
// the rows it collected: such a run was not what its record says, and
// settling it would hide that. No retry can fix it; the run is cancelled
// with the numbers, and nothing of step 2 is written.
func (w *PointSettlementWorker) checkRecord(ctx context.Context, tx pgx.Tx, job *river.Job[PointSettlementArgs], out *SettlementOutput) error {
	written, skipped, err := w.deps.Store.RunCollectedTx(ctx, tx, job.Args.RunDate, job.ID)
	if err != nil {
		return err
	}
	c := out.SettlementCounts
	if c.Read == c.Written+c.Skipped+c.NotReady && c.Written == written && c.Skipped == skipped {
		return nil
	}
	return river.JobCancel(fmt.Errorf("point_settlement %s run %d: %w: read %d, written %d, skipped %d, not ready %d; "+
		"daily_batch holds %d of its rows and settlement_skip %d", job.Args.RunDate, job.Args.Run, errRecord,
		c.Read, c.Written, c.Skipped, c.NotReady, written, skipped))
}

// continueCatchUp starts the first unsettled date in [from, until], in tx,
// unless a run for it exists (active: that run, or the next daily run,
// carries on; completed meanwhile: the next daily run does). It returns the
// date started, if any.
func continueCatchUp(ctx context.Context, client *Client, st *store.Store, tx pgx.Tx, from, until string) (string, error) {
	dates, err := st.UnsettledDatesTx(ctx, tx, from, until)
	if err != nil || len(dates) == 0 {
		return "", err
	}
	_, err = EnqueueSettlementTx(ctx, client, st, tx, dates[0], SettlementRunOpts{Until: until, Trigger: SettlementTriggerCatchUp})
	if errors.Is(err, ErrAlreadyRan) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return dates[0], nil
}

// SettlementRunOpts are the non-identifying parameters of a new run.
type SettlementRunOpts struct {
	Rerun          bool
	Until          string
	Trigger        string
	CommitInterval int
	SkipLimit      *int
}

// SettlementRun is the run number of a point_settlement job (0 for
// another kind's).
func SettlementRun(job *rivertype.JobRow) int {
	var a PointSettlementArgs
	_ = json.Unmarshal(job.EncodedArgs, &a)
	return a.Run
}

// EnqueueSettlement starts a run for runDate in a transaction of its own; see
// EnqueueSettlementTx.
func EnqueueSettlement(ctx context.Context, client *Client, st *store.Store, runDate string, opts SettlementRunOpts) (*rivertype.JobRow, error) {
	var job *rivertype.JobRow
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		job, err = EnqueueSettlementTx(ctx, client, st, tx, runDate, opts)
		return err
	})
	return job, err
}

// EnqueueSettlementTx starts a run for runDate in tx, or refuses it as every
// run with an identity is refused (enqueueRunTx): with *RunActiveError while
// a run for the date is queued, running or waiting to retry, and with
// *RunCompletedError when the date is settled and opts.Rerun is false. Every
// run of a date is numbered: 1 for the first, one more for each later one.
func EnqueueSettlementTx(ctx context.Context, client *Client, st *store.Store, tx pgx.Tx, runDate string, opts SettlementRunOpts) (*rivertype.JobRow, error) {
	if _, err := calendar.ParseDate(runDate); err != nil {
		return nil, err
	}
	trigger := opts.Trigger
	if trigger == "" {
		trigger = SettlementTriggerCLI
	}
	return enqueueRunTx(ctx, client, st, tx, runIdentity{
		kind:     PointSettlementArgs{}.Kind(),
		identity: map[string]any{settlementRunDateKey: runDate},
		build: func(run int) river.JobArgs {
			return PointSettlementArgs{
				RunDate: runDate, Run: run, Rerun: opts.Rerun, Until: opts.Until, Trigger: trigger,
				CommitInterval: opts.CommitInterval, SkipLimit: opts.SkipLimit,
			}
		},
		// A date is settled once its point_daily_settlement row exists.
		lastCompleted: func(ctx context.Context, tx pgx.Tx) (store.CompletedRun, error) {
			settled, err := st.GetSettlementTx(ctx, tx, runDate)
			return store.CompletedRun{JobID: settled.JobID, FinalizedAt: settled.SettledAt}, err
		},
		number: func(ctx context.Context, tx pgx.Tx) (int, error) {
			return st.NextSettlementRunTx(ctx, tx, runDate)
		},
	}, opts.Rerun)
}
