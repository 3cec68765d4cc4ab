package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// TriggerVerify marks therapy_stats jobs re-enqueued by therapy_stats_verify.
const TriggerVerify = "verify"

// VerifyPeriod is how often therapy_stats_verify runs.
const VerifyPeriod = time.Hour

// DefaultVerifySample is how many therapy_statistics rows one verification
// recomputes.
const DefaultVerifySample = 500

// TherapyStatsVerifyArgs checks a random sample of therapy_statistics rows
// against a recomputation from therapy_perform. Unique per hour on all its
// fields (none is tagged, so River keys on the whole args): the hourly check,
// a dry run and each month's check are apart.
type TherapyStatsVerifyArgs struct {
	Sample int  `json:"sample,omitempty"`
	DryRun bool `json:"dry_run,omitempty"`
	// Month (YYYY-MM) samples that month's rows only: a month's
	// verification, started by EnqueueTherapyVerifyMonth, once per month
	// until a rerun. Empty: every month's rows (the hourly check).
	Month string `json:"month,omitempty"` // therapyVerifyMonthKey
	// Rerun numbers a month's verification run again with --rerun (1, 2,
	// …); absent on its first run.
	Rerun int `json:"rerun,omitempty"`
}

// Kind is therapy_stats_verify.
func (TherapyStatsVerifyArgs) Kind() string { return "therapy_stats_verify" }

// InsertOpts makes the check unique per period.
func (TherapyStatsVerifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: VerifyPeriod}}
}

// TherapyStatsVerifyWorker runs VerifyTherapyStats and records its report.
type TherapyStatsVerifyWorker struct{ worker[TherapyStatsVerifyArgs] }

// NewTherapyStatsVerifyWorker returns the therapy statistics check worker.
func NewTherapyStatsVerifyWorker(deps Deps) *TherapyStatsVerifyWorker {
	return &TherapyStatsVerifyWorker{worker[TherapyStatsVerifyArgs]{deps: deps, timeout: time.Minute}}
}

// Work verifies the sample.
func (w *TherapyStatsVerifyWorker) Work(ctx context.Context, job *river.Job[TherapyStatsVerifyArgs]) error {
	if m := job.Args.Month; m != "" {
		if _, _, err := calendar.ParseYearMonth(m); err != nil {
			return river.JobCancel(fmt.Errorf("therapy_stats_verify: month %q: %w", m, err))
		}
	}
	rep, err := verifyTherapyStats(ctx, w.deps, job.Args.Sample, job.Args.Month, job.Args.DryRun)
	if err != nil {
		return err
	}
	return recordOutput(ctx, w.deps.Store, job.ID, rep)
}

// TherapyVerifyReport is what one verification found and did.
type TherapyVerifyReport struct {
	// Month is the month sampled; empty when every month's rows were.
	Month      string               `json:"month,omitempty"`
	DryRun     bool                 `json:"dry_run"`
	Checked    int                  `json:"checked"`
	Drifted    int                  `json:"drifted"`
	Drifts     []store.TherapyDrift `json:"drifts,omitempty"`
	Reenqueued int                  `json:"reenqueued"`
	JobIDs     []int64              `json:"job_ids,omitempty"`
}

// VerifyTherapyStats recomputes a sample of therapy_statistics rows in SQL
// (writing nothing) and, unless dryRun, re-enqueues the aggregation of every
// drifted row (`enqueue reconcile --check therapy`).
func VerifyTherapyStats(ctx context.Context, deps Deps, dryRun bool) (TherapyVerifyReport, error) {
	return verifyTherapyStats(ctx, deps, DefaultVerifySample, "", dryRun)
}

// verifyTherapyStats samples month's rows (YYYY-MM), or every month's when
// month is empty.
func verifyTherapyStats(ctx context.Context, deps Deps, sample int, month string, dryRun bool) (TherapyVerifyReport, error) {
	if sample <= 0 {
		sample = DefaultVerifySample
	}
	rep := TherapyVerifyReport{Month: month, DryRun: dryRun}
	var (
		checked int
		drifts  []store.TherapyDrift
		err     error
	)
	if month == "" {
		checked, drifts, err = deps.Store.SampleTherapyDrift(ctx, sample, deps.TZ)
	} else {
		year, mon, perr := calendar.ParseYearMonth(month)
		if perr != nil {
			return rep, fmt.Errorf("jobs: therapy verify: month %q: %w", month, perr)
		}
		checked, drifts, err = deps.Store.SampleTherapyMonthDrift(ctx, sample, year, mon, deps.TZ)
	}
	if err != nil {
		return rep, err
	}
	rep.Checked, rep.Drifted, rep.Drifts = checked, len(drifts), drifts
	if len(rep.Drifts) > 100 {
		rep.Drifts = rep.Drifts[:100]
	}
	if dryRun || len(drifts) == 0 {
		return rep, nil
	}
	client := deps.River
	if c, err := river.ClientFromContextSafely[pgx.Tx](ctx); err == nil {
		client = c
	}
	if client == nil {
		return rep, fmt.Errorf("jobs: therapy verify: no river client to re-enqueue %d drifted row(s)", len(drifts))
	}
	now := time.Now()
	params := make([]river.InsertManyParams, len(drifts))
	for i, d := range drifts {
		params[i] = river.InsertManyParams{Args: TherapyStatsArgs{
			TherapyUserID: d.TherapyUserID, Year: d.Year, Month: d.Month,
			BusinessDate: calendar.BusinessDate(now, deps.TZ),
			// Its own RecoverID: an aggregation already done today must run again.
			RecoverID: "verify:" + now.UTC().Format(time.RFC3339Nano),
			Trigger:   TriggerVerify,
		}}
	}
	res, err := client.InsertMany(ctx, params)
	if err != nil {
		return rep, fmt.Errorf("jobs: therapy verify: re-enqueue: %w", err)
	}
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			rep.Reenqueued++
		}
		rep.JobIDs = append(rep.JobIDs, r.Job.ID)
	}
	return rep, nil
}

// therapyVerifyMonthKey is TherapyStatsVerifyArgs.Month's JSON key, a month
// verification's identity (store.CompletedVerifications reads it).
const therapyVerifyMonthKey = "month"

// EnqueueTherapyVerifyMonth starts the verification of month (YYYY-MM), a
// sample of that month's therapy_statistics rows, or refuses it as a daily
// run is refused: with *RunActiveError while one is queued or running, and
// with *RunCompletedError once one completed, unless rerun. Its completed
// runs are found in job_history (store.LastCompletedVerification), where they
// stay for AUDIT_RETENTION; completed_run, which keeps a run's identity for
// good, does not hold them: a check's verdict ages with the data it checked.
func EnqueueTherapyVerifyMonth(ctx context.Context, client *Client, st *store.Store, month string, rerun bool) (*rivertype.JobRow, error) {
	if _, _, err := calendar.ParseYearMonth(month); err != nil {
		return nil, fmt.Errorf("month %q: %w", month, err)
	}
	return enqueueRun(ctx, client, st, runIdentity{
		kind:     TherapyStatsVerifyArgs{}.Kind(),
		identity: map[string]any{therapyVerifyMonthKey: month},
		build:    func(n int) river.JobArgs { return TherapyStatsVerifyArgs{Month: month, Rerun: n} },
		lastCompleted: func(ctx context.Context, tx pgx.Tx) (store.CompletedRun, error) {
			return st.LastCompletedVerification(ctx, tx, month)
		},
	}, rerun)
}
