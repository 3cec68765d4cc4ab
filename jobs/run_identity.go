package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/store"
)

// A run with an identity (the therapy daily run per business date, the
// exchange job's five parameters) runs once: a second start is refused while
// the first is queued or running, and after it completed — even once River's
// cleaner has moved its job out of river_job (completed_run keeps the
// identity for good) — until the operator asks for a rerun. River's unique
// key alone cannot do this: it lives only as long as the job row.

// RunActiveError refuses a run whose identity has a run queued, running or
// waiting to retry (Spring Batch's JobExecutionAlreadyRunningException).
type RunActiveError struct {
	Kind  string
	JobID int64
	State rivertype.JobState
}

func (e *RunActiveError) Error() string {
	return fmt.Sprintf("%s: already %s as job %d", e.Kind, e.State, e.JobID)
}

// RunCompletedError refuses a run whose identity already completed and was
// not asked to run again (Spring Batch's JobInstanceAlreadyCompleteException).
type RunCompletedError struct {
	Kind        string
	JobID       int64
	FinalizedAt time.Time
}

func (e *RunCompletedError) Error() string {
	return fmt.Sprintf("%s: already completed as job %d at %s; use --rerun to run it again",
		e.Kind, e.JobID, e.FinalizedAt.UTC().Format(time.RFC3339))
}

// activeStates are the states of a run not finished yet.
var activeStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled, rivertype.JobStatePending}

// enqueueRun starts a run of kind with identity in its own transaction, or
// refuses it with *RunActiveError or *RunCompletedError. With rerun, a run
// whose identity completed starts again, numbered one past every run on
// record (build gets the number; 0 for a first run). Two callers at once
// serialise on an advisory lock on the identity. The completed runs are found
// by lastCompleted, or by st.LastCompletedRun when it is nil: a kind whose
// runs completed_run does not keep looks them up where it keeps them.
func enqueueRun(ctx context.Context, client *Client, st *store.Store, kind string, identity map[string]any,
	rerun bool, build func(rerun int) river.JobArgs, lastCompleted lastCompletedFunc,
) (*rivertype.JobRow, error) {
	if lastCompleted == nil {
		lastCompleted = st.LastCompletedRun
	}
	var job *rivertype.JobRow
	err := fenced(ctx, st, func(tx pgx.Tx) error {
		var err error
		job, err = enqueueRunTx(ctx, client, st, tx, kind, identity, rerun, build, lastCompleted)
		return err
	})
	return job, err
}

// lastCompletedFunc finds the latest completed run of an identity, or
// store.ErrNotFound.
type lastCompletedFunc func(ctx context.Context, q store.DBTX, kind string, identity map[string]any) (store.CompletedRun, error)

func enqueueRunTx(ctx context.Context, client *Client, st *store.Store, tx pgx.Tx, kind string, identity map[string]any,
	rerun bool, build func(rerun int) river.JobArgs, lastCompleted lastCompletedFunc,
) (*rivertype.JobRow, error) {
	if err := st.LockRunTx(ctx, tx, kind, identity); err != nil {
		return nil, err
	}
	id, err := json.Marshal(identity)
	if err != nil {
		return nil, err
	}
	active, err := client.JobListTx(ctx, tx, river.NewJobListParams().Kinds(kind).States(activeStates...).
		Where("args @> @identity::jsonb", river.NamedArgs{"identity": string(id)}).
		OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(1))
	if err != nil {
		return nil, fmt.Errorf("jobs: active %s: %w", kind, err)
	}
	if len(active.Jobs) > 0 {
		return nil, &RunActiveError{Kind: kind, JobID: active.Jobs[0].ID, State: active.Jobs[0].State}
	}
	n := 0
	done, err := lastCompleted(ctx, tx, kind, identity)
	switch {
	case err == nil && !rerun:
		return nil, &RunCompletedError{Kind: kind, JobID: done.JobID, FinalizedAt: done.FinalizedAt}
	case err == nil:
		if n, err = st.NextRerun(ctx, tx, kind, identity); err != nil {
			return nil, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	res, err := client.InsertTx(ctx, tx, build(n), nil)
	if err != nil {
		return nil, fmt.Errorf("jobs: enqueue %s: %w", kind, err)
	}
	if res.UniqueSkippedAsDuplicate {
		// River's unique key is the second guard, behind the lock.
		if res.Job.State == rivertype.JobStateCompleted {
			return nil, &RunCompletedError{Kind: kind, JobID: res.Job.ID, FinalizedAt: *res.Job.FinalizedAt}
		}
		return nil, &RunActiveError{Kind: kind, JobID: res.Job.ID, State: res.Job.State}
	}
	return res.Job, nil
}

// refuseCompletedRun cancels a job whose identity another job already
// completed, unless it is a rerun: a periodic insert, which does not go
// through enqueueRun, of a run River's cleaner has since moved out of
// river_job.
func refuseCompletedRun(ctx context.Context, st *store.Store, kind string, identity map[string]any, jobID int64, rerun int) error {
	if rerun > 0 {
		return nil
	}
	done, err := st.LastCompletedRun(ctx, st.Pool, kind, identity)
	if errors.Is(err, store.ErrNotFound) || (err == nil && done.JobID == jobID) {
		return nil
	}
	if err != nil {
		return err
	}
	return river.JobCancel(&RunCompletedError{Kind: kind, JobID: done.JobID, FinalizedAt: done.FinalizedAt})
}
