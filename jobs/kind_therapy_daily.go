package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// TherapyDailyArgs runs the daily therapy fan-out for one business date: it
// aggregates the month of the day before BusinessDate (the run at 00:00 on
// 1 December finalises November). One run per date (EnqueueTherapyDaily),
// until a rerun.
type TherapyDailyArgs struct {
	BusinessDate string `json:"business_date" river:"unique"` // therapyDailyDateKey
	// Rerun numbers a run started with --rerun on a date already run (1,
	// 2, …); absent on a date's first run.
	Rerun int `json:"rerun,omitempty" river:"unique"`
}

// Kind is therapy_daily.
func (TherapyDailyArgs) Kind() string { return "therapy_daily" }

// InsertOpts makes the job unique per business date, in every state but
// cancelled and discarded (a failed run may be run again).
func (TherapyDailyArgs) InsertOpts() river.InsertOpts {
	return uniqueByArgs(QueueDefault, 5)
}

// therapyDailyDateKey is TherapyDailyArgs.BusinessDate's JSON key, the
// run's identity (tidemark_run_identity in SQL).
const therapyDailyDateKey = "business_date"

// therapyDailyRun is a daily run's identity: its business date.
func therapyDailyRun(businessDate string) runIdentity {
	return runIdentity{
		kind:     TherapyDailyArgs{}.Kind(),
		identity: map[string]any{therapyDailyDateKey: businessDate},
		build:    func(n int) river.JobArgs { return TherapyDailyArgs{BusinessDate: businessDate, Rerun: n} },
	}
}

// EnqueueTherapyDaily starts the daily run of businessDate, or refuses it
// with *RunActiveError or *RunCompletedError (the latter unless rerun).
func EnqueueTherapyDaily(ctx context.Context, client *Client, st *store.Store, businessDate string, rerun bool) (*rivertype.JobRow, error) {
	if _, _, err := calendar.TherapyMonthFor(businessDate); err != nil {
		return nil, err
	}
	return enqueueRun(ctx, client, st, therapyDailyRun(businessDate), rerun)
}

// CompletedTherapyDailyDates returns the business dates in [from, to] whose
// daily run completed, with the latest such run's job: the runs
// EnqueueTherapyDaily refuses to start again, wherever their jobs are now.
func CompletedTherapyDailyDates(ctx context.Context, st *store.Store, from, to string) (map[string]int64, error) {
	return st.CompletedDates(ctx, TherapyDailyArgs{}.Kind(), therapyDailyDateKey, from, to)
}

// TherapyDailyOutput is what a therapy_daily run records on its job.
type TherapyDailyOutput struct {
	Year       int `json:"year"`
	Month      int `json:"month"`
	Targets    int `json:"targets"`
	Inserted   int `json:"inserted"`
	Duplicates int `json:"duplicates"`
}

// TherapyDailyWorker selects the users whose month changed since their last
// aggregation and fans out one therapy_stats job per user. Killed half way, the
// retry selects again and the unique keys skip the jobs already inserted.
type TherapyDailyWorker struct{ worker[TherapyDailyArgs] }

// NewTherapyDailyWorker returns the daily therapy fan-out worker, one fan-out
// bounded inside the rescue window.
func NewTherapyDailyWorker(deps Deps) *TherapyDailyWorker {
	return &TherapyDailyWorker{worker[TherapyDailyArgs]{deps: deps, timeout: time.Minute}}
}

// Work runs the fan-out.
func (w *TherapyDailyWorker) Work(ctx context.Context, job *river.Job[TherapyDailyArgs]) error {
	year, month, err := calendar.TherapyMonthFor(job.Args.BusinessDate)
	if err != nil {
		return river.JobCancel(fmt.Errorf("therapy_daily: %w", err))
	}
	if err := refuseCompletedRun(ctx, w.deps.Store, therapyDailyRun(job.Args.BusinessDate), job.ID, job.Args.Rerun); err != nil {
		return err
	}
	// The target selection and every aggregation read therapy_perform, which
	// a bulk load of sessions grows faster than autovacuum looks at it; on
	// stale statistics each batch of aggregations scans the whole table.
	if _, err := w.deps.Store.AnalyzeIfStale(ctx, store.TableTherapyPerform); err != nil {
		w.deps.Logger.WarnContext(ctx, "therapy_daily: therapy_perform's statistics not refreshed", "error", err)
	}
	targets, err := w.deps.Store.TherapyTargets(ctx, year, month, w.deps.TZ)
	if err != nil {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	// The run on the first day of this date's month finalised the month
	// before it. If no worker ran that day, no later run would look at that
	// month again: enqueue the missed run (refused when that date ran or is
	// running; a first-of-month run catches up nothing, so this never chains).
	first, err := calendar.FirstOfMonth(job.Args.BusinessDate)
	if err != nil {
		return river.JobCancel(err)
	}
	if first != job.Args.BusinessDate {
		_, err := EnqueueTherapyDaily(ctx, client, w.deps.Store, first, false)
		if err != nil && !errors.Is(err, ErrAlreadyRan) {
			return fmt.Errorf("therapy_daily: enqueue the run of %s: %w", first, err)
		}
	}
	// Users enqueued of the targets, per batch of inserts; the children's own
	// progress is their jobs' states, computed rather than recorded.
	prog := newProgressRecorder(job.ID, "users", DefaultProgressEvery, 0, int64(len(targets)))
	recordProgress := func(done int) {
		if err := prog.record(ctx, w.deps.Store, int64(done), nil); err != nil {
			w.deps.Logger.WarnContext(ctx, "therapy_daily: progress not recorded", "error", err)
		}
	}
	res, err := EnqueueTherapyStats(ctx, client, w.deps.Store, targets, year, month, job.Args.BusinessDate, TriggerDaily, recordProgress)
	if err != nil {
		return err
	}
	if res.StatisticsErr != nil {
		w.deps.Logger.WarnContext(ctx, "therapy_daily: river_job's statistics not refreshed", "error", res.StatisticsErr)
	}
	out := TherapyDailyOutput{Year: year, Month: month, Targets: len(targets), Inserted: res.Inserted, Duplicates: res.Duplicates}
	w.deps.Logger.InfoContext(ctx, "therapy_daily fan-out", "business_date", job.Args.BusinessDate,
		"month", calendar.FormatYearMonth(year, month), "targets", out.Targets, "inserted", out.Inserted, "duplicates", out.Duplicates)
	return recordOutput(ctx, w.deps.Store, job.ID, out)
}
