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

// ProgressKey is the key of a running job's output under which its progress
// is recorded. The run's final output (river.RecordOutput) replaces the whole
// output when the attempt ends, so the progress never mixes with the counts
// batch_job_execution reads.
const ProgressKey = "progress"

// DefaultProgressEvery bounds how often a job writes its progress: a chunk
// commits in milliseconds, and one more UPDATE of the job per chunk is cheap,
// but not per few rows.
const DefaultProgressEvery = time.Second

// Progress is how far a running job is: Done of Total units (Total 0 when not
// known), the rate of this attempt and, with a Total, an estimated finish.
// Counts holds a kind's own figures (the settlement's read, written, ...).
type Progress struct {
	Done      int64            `json:"done"`
	Total     int64            `json:"total,omitempty"`
	Unit      string           `json:"unit"`
	RatePerS  float64          `json:"rate_per_s"`
	ETA       *time.Time       `json:"eta,omitempty"`
	UpdatedAt time.Time        `json:"updated_at"`
	Counts    map[string]int64 `json:"counts,omitempty"`
}

// progressOutput is the output a running job carries.
type progressOutput struct {
	Progress Progress `json:"progress"`
}

// progressRecorder writes a running job's progress at most every `every`
// through Client.JobUpdateTx, in the caller's transaction, so the progress
// commits with the work it counts.
type progressRecorder struct {
	jobID int64
	unit  string
	every time.Duration
	// total is 0 when not known.
	total int64
	// started and startDone are this attempt's start, for the rate.
	started   time.Time
	startDone int64
	last      time.Time
}

func newProgressRecorder(jobID int64, unit string, every time.Duration, done, total int64) *progressRecorder {
	return &progressRecorder{jobID: jobID, unit: unit, every: every, total: total, started: time.Now(), startDone: done}
}

// progress computes the progress at done.
func (r *progressRecorder) progress(now time.Time, done int64, counts map[string]int64) Progress {
	p := Progress{Done: done, Total: r.total, Unit: r.unit, UpdatedAt: now.UTC(), Counts: counts}
	if secs := now.Sub(r.started).Seconds(); secs > 0 {
		p.RatePerS = float64(done-r.startDone) / secs
	}
	if r.total > 0 && p.RatePerS > 0 && done < r.total {
		eta := now.Add(time.Duration(float64(r.total-done) / p.RatePerS * float64(time.Second))).UTC()
		p.ETA = &eta
	}
	return p
}

// due reports whether a write is due now.
func (r *progressRecorder) due(now time.Time) bool {
	return r.last.IsZero() || now.Sub(r.last) >= r.every
}

// recordTx writes the progress in tx if one is due.
func (r *progressRecorder) recordTx(ctx context.Context, tx pgx.Tx, done int64, counts map[string]int64) error {
	now := time.Now()
	if !r.due(now) {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	out := progressOutput{Progress: r.progress(now, done, counts)}
	if _, err := client.JobUpdateTx(ctx, tx, r.jobID, &river.JobUpdateParams{Output: out}); err != nil {
		return fmt.Errorf("jobs: record progress of job %d: %w", r.jobID, err)
	}
	r.last = now
	return nil
}

// record writes the progress in a fenced transaction of its own if one is
// due: a stale attempt's progress never overwrites the job's output.
func (r *progressRecorder) record(ctx context.Context, st *store.Store, done int64, counts map[string]int64) error {
	now := time.Now()
	if !r.due(now) {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	out := progressOutput{Progress: r.progress(now, done, counts)}
	err := fenced(ctx, st, func(tx pgx.Tx) error {
		_, err := client.JobUpdateTx(ctx, tx, r.jobID, &river.JobUpdateParams{Output: out})
		return err
	})
	// A job this connection cannot see (deleted, or inserted in a test's
	// uncommitted transaction) has no one to show its progress to.
	if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return fmt.Errorf("jobs: record progress of job %d: %w", r.jobID, err)
	}
	r.last = now
	return nil
}

// JobProgress returns the progress a job's metadata carries, if any.
func JobProgress(job *rivertype.JobRow) (Progress, bool) {
	var meta struct {
		Output *struct {
			Progress *Progress `json:"progress"`
		} `json:"output"`
	}
	if json.Unmarshal(job.Metadata, &meta) != nil || meta.Output == nil || meta.Output.Progress == nil {
		return Progress{}, false
	}
	return *meta.Output.Progress, true
}

// RunningProgress is one running job and its progress. Recorded is false for
// a job that records none (yet): it is running, nothing more is known.
type RunningProgress struct {
	Kind     string
	JobID    int64
	Attempt  int
	Started  time.Time
	Recorded bool
	Progress
}

// ListRunningProgress returns the progress of every running job (at most
// 1000, oldest first), read through River's JobList.
func ListRunningProgress(ctx context.Context, client *Client) ([]RunningProgress, error) {
	res, err := client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).
		OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(1000))
	if err != nil {
		return nil, fmt.Errorf("jobs: list running jobs: %w", err)
	}
	out := make([]RunningProgress, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		rp := RunningProgress{Kind: j.Kind, JobID: j.ID, Attempt: j.Attempt}
		if j.AttemptedAt != nil {
			rp.Started = *j.AttemptedAt
		}
		rp.Progress, rp.Recorded = JobProgress(j)
		out = append(out, rp)
	}
	return out, nil
}
