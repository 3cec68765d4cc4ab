package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/store"
)

// A run with an identity (the therapy daily run and the settlement per
// business date, the month's verification, the exchange job's five
// parameters) runs once: a second start is refused while the first is
// queued or running, and after it completed — even once River's cleaner has
// moved its job out of river_job — until the operator asks for a rerun.
// River's unique key alone cannot do this: it lives only as long as the job
// row. Every such kind starts its runs through enqueueRun with a runIdentity
// of its own, and every refusal is one of the two errors below.

// ErrAlreadyRan is what both refusals are (errors.Is): the run exists,
// queued, running or completed, and nothing was enqueued. Callers that only
// need to know "nothing to do" check this; errors.As to *RunActiveError or
// *RunCompletedError gives the job.
var ErrAlreadyRan = errors.New("jobs: run already exists")

// RunActiveError refuses a run whose identity has a run queued, running or
// waiting to retry (Spring Batch's JobExecutionAlreadyRunningException).
type RunActiveError struct {
	Run   string // the kind and its identity, as in messages: "point_settlement 2026-11-20"
	JobID int64
	State rivertype.JobState
}

func (e *RunActiveError) Error() string {
	if e.State == rivertype.JobStateRunning {
		return fmt.Sprintf("%s: already running as job %d; wait for it to finish", e.Run, e.JobID)
	}
	return fmt.Sprintf("%s: already queued as job %d (%s); wait for it to finish", e.Run, e.JobID, e.State)
}

// Is makes the error ErrAlreadyRan.
func (e *RunActiveError) Is(target error) bool { return target == ErrAlreadyRan }

// RunCompletedError refuses a run whose identity already completed and was
// not asked to run again (Spring Batch's JobInstanceAlreadyCompleteException).
type RunCompletedError struct {
	Run         string
	JobID       int64
	FinalizedAt time.Time // shown in its own location (UTC unless a caller sets BATCH_TZ's)
}

func (e *RunCompletedError) Error() string {
	return fmt.Sprintf("%s: already completed as job %d at %s; use --rerun to run it again",
		e.Run, e.JobID, e.FinalizedAt.Format(time.RFC3339))
}

// Is makes the error ErrAlreadyRan.
func (e *RunCompletedError) Is(target error) bool { return target == ErrAlreadyRan }

// runIdentity describes one kind's runs to the protocol.
type runIdentity struct {
	kind string
	// identity is the identifying parameters, JSON keys of the job's args
	// (as tidemark_run_identity keeps them in completed_run).
	identity map[string]any
	// build is the job of run number n.
	build func(n int) river.JobArgs
	// lastCompleted finds the identity's latest completed run, or
	// store.ErrNotFound. Nil: st.LastCompletedRun, for the kinds whose
	// completed runs completed_run keeps.
	lastCompleted func(ctx context.Context, tx pgx.Tx) (store.CompletedRun, error)
	// number numbers every run (the settlement's run, 1 for a date's first).
	// Nil: a first run is 0 and a rerun one past every run on record
	// (st.NextRerun).
	number func(ctx context.Context, tx pgx.Tx) (int, error)
}

// name is the run as messages show it: the kind and its identity's values.
func (r runIdentity) name() string {
	keys := make([]string, 0, len(r.identity))
	for k := range r.identity {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 1 {
		return fmt.Sprintf("%s %v", r.kind, r.identity[keys[0]])
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		if s, ok := r.identity[k].(string); ok {
			parts[i] = fmt.Sprintf("%s=%q", k, s) // text a user gave: quoted, so a comma in it reads as its own
		} else {
			parts[i] = fmt.Sprintf("%s=%v", k, r.identity[k])
		}
	}
	return r.kind + " " + strings.Join(parts, ", ")
}

// activeStates are the states of a run not finished yet.
var activeStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled, rivertype.JobStatePending}

// identifier is what a kind or identity key written into SQL may be.
var identifier = regexp.MustCompile(`^[a-z_]+$`)

// enqueueRun starts run in its own (fenced) transaction; see enqueueRunTx.
func enqueueRun(ctx context.Context, client *Client, st *store.Store, run runIdentity, rerun bool) (*rivertype.JobRow, error) {
	var job *rivertype.JobRow
	err := fenced(ctx, st, func(tx pgx.Tx) error {
		var err error
		job, err = enqueueRunTx(ctx, client, st, tx, run, rerun)
		return err
	})
	return job, err
}

// enqueueRunTx starts run in tx, or refuses it with *RunActiveError or
// *RunCompletedError (the latter unless rerun). The decision and the insert
// happen under a transaction-scoped advisory lock on the identity, so two
// callers at once (two CLIs, the CLI and a periodic job) serialise: the
// second sees the first's committed job and is refused. The run number is
// part of River's unique key, a second guard against a duplicate insert.
func enqueueRunTx(ctx context.Context, client *Client, st *store.Store, tx pgx.Tx, run runIdentity, rerun bool) (*rivertype.JobRow, error) {
	if err := st.LockRunTx(ctx, tx, run.kind, run.identity); err != nil {
		return nil, err
	}
	active, err := activeRun(ctx, client, tx, run)
	if err != nil {
		return nil, err
	}
	if active != nil {
		return nil, &RunActiveError{Run: run.name(), JobID: active.ID, State: active.State}
	}
	done, err := lastCompleted(ctx, st, tx, run)
	completed := err == nil
	switch {
	case completed && !rerun:
		return nil, &RunCompletedError{Run: run.name(), JobID: done.JobID, FinalizedAt: done.FinalizedAt.UTC()}
	case !completed && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	n, err := runNumber(ctx, st, tx, run, completed)
	if err != nil {
		return nil, err
	}
	res, err := client.InsertTx(ctx, tx, run.build(n), nil)
	if err != nil {
		return nil, fmt.Errorf("jobs: enqueue %s: %w", run.name(), err)
	}
	if res.UniqueSkippedAsDuplicate {
		// River's unique key is the second guard, behind the lock.
		if res.Job.State == rivertype.JobStateCompleted {
			return nil, &RunCompletedError{Run: run.name(), JobID: res.Job.ID, FinalizedAt: res.Job.FinalizedAt.UTC()}
		}
		return nil, &RunActiveError{Run: run.name(), JobID: res.Job.ID, State: res.Job.State}
	}
	return res.Job, nil
}

// runNumber numbers a new run: the kind's own way, or 0 for a first run and
// one past every run on record for a rerun of a completed one.
func runNumber(ctx context.Context, st *store.Store, tx pgx.Tx, run runIdentity, completed bool) (int, error) {
	switch {
	case run.number != nil:
		return run.number(ctx, tx)
	case completed:
		return st.NextRerun(ctx, tx, run.kind, run.identity)
	}
	return 0, nil
}

// activeRun returns the identity's oldest run queued, running or waiting to
// retry, or nil. The kind is a literal in the condition and every string
// identity key is compared with ->> as well as by containment, so a partial
// expression index on a key (the ledger migration's on the settlement's
// run_date) serves every plan. Only the identity is bound, once: a key is
// read back from it in SQL, so no key's name can collide with a
// placeholder, and the keys go in sorted, so one kind's SQL is one text.
func activeRun(ctx context.Context, client *Client, tx pgx.Tx, run runIdentity) (*rivertype.JobRow, error) {
	if !identifier.MatchString(run.kind) {
		return nil, fmt.Errorf("jobs: kind %q is not an identifier", run.kind)
	}
	id, err := json.Marshal(run.identity)
	if err != nil {
		return nil, fmt.Errorf("jobs: %s identity: %w", run.kind, err)
	}
	where := "kind = '" + run.kind + "' AND args @> @identity::jsonb"
	keys := make([]string, 0, len(run.identity))
	for k, v := range run.identity {
		if _, ok := v.(string); ok && identifier.MatchString(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		where += " AND args ->> '" + k + "' = (@identity::jsonb ->> '" + k + "')"
	}
	named := river.NamedArgs{"identity": string(id)}
	active, err := client.JobListTx(ctx, tx, river.NewJobListParams().States(activeStates...).
		Where(where, named).OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(1))
	if err != nil {
		return nil, fmt.Errorf("jobs: active %s: %w", run.name(), err)
	}
	if len(active.Jobs) == 0 {
		return nil, nil
	}
	return active.Jobs[0], nil
}

func lastCompleted(ctx context.Context, st *store.Store, tx pgx.Tx, run runIdentity) (store.CompletedRun, error) {
	if run.lastCompleted != nil {
		return run.lastCompleted(ctx, tx)
	}
	return st.LastCompletedRun(ctx, tx, run.kind, run.identity)
}

// refuseCompletedRun cancels a job whose identity another job already
// completed, unless it is a rerun: a periodic insert, which does not go
// through enqueueRun, of a run River's cleaner has since moved out of
// river_job.
func refuseCompletedRun(ctx context.Context, st *store.Store, run runIdentity, jobID int64, rerun int) error {
	if rerun > 0 {
		return nil
	}
	var done store.CompletedRun
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		done, err = lastCompleted(ctx, st, tx, run)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && done.JobID == jobID) {
		return nil
	}
	if err != nil {
		return err
	}
	return river.JobCancel(&RunCompletedError{Run: run.name(), JobID: done.JobID, FinalizedAt: done.FinalizedAt.UTC()})
}
