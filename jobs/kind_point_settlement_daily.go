package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// PointSettlementDailyArgs is the nightly settlement trigger for business date
// BusinessDate: it settles that date (the run at 00:30 on D collects rows
// with process_on <= D, i.e. the previous day's transactions and reprocess
// requests), first catching up any dates since the last settled one that have
// no settlement. Unique on the date: one trigger per night.
type PointSettlementDailyArgs struct {
	BusinessDate string `json:"business_date" river:"unique"`
}

// Kind is point_settlement_daily.
func (PointSettlementDailyArgs) Kind() string { return "point_settlement_daily" }

// InsertOpts makes the trigger unique per business date.
func (PointSettlementDailyArgs) InsertOpts() river.InsertOpts {
	return uniqueByArgs(QueueDefault, 5)
}

// SettlementDailyOutput is what the trigger records on its job.
type SettlementDailyOutput struct {
	LastSettled string   `json:"last_settled,omitempty"`
	Missing     []string `json:"missing"`
	Started     string   `json:"started,omitempty"`
	WaitingOn   int64    `json:"waiting_on,omitempty"`
}

// PointSettlementDailyWorker starts the catch-up chain: the oldest date after
// the last settled one that has no settlement, with Until = BusinessDate;
// each run starts the next date when it completes (oldest first, so a row
// due on a missed day is settled on that day, not a later one). Every start
// goes through EnqueueSettlementTx, so each date runs exactly once.
type PointSettlementDailyWorker struct {
	worker[PointSettlementDailyArgs]
}

// NewPointSettlementDailyWorker returns the worker, whose attempt only
// inserts a job.
func NewPointSettlementDailyWorker(deps Deps) *PointSettlementDailyWorker {
	return &PointSettlementDailyWorker{worker[PointSettlementDailyArgs]{deps: deps, timeout: 30 * time.Second}}
}

// Work starts the oldest missing date's run. If that date's run is already
// queued or running (a catch-up still going, or an operator's run), it
// snoozes for a minute and looks again.
func (w *PointSettlementDailyWorker) Work(ctx context.Context, job *river.Job[PointSettlementDailyArgs]) error {
	d := job.Args.BusinessDate
	if _, err := calendar.ParseDate(d); err != nil {
		return river.JobCancel(fmt.Errorf("point_settlement_daily: %w", err))
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	out, err := CatchUpSettlements(ctx, client, w.deps.Store, d)
	if rerr := recordOutput(ctx, w.deps.Store, job.ID, out); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	if out.WaitingOn != 0 {
		return river.JobSnooze(time.Minute)
	}
	return nil
}

// CatchUpSettlements starts the first run of the catch-up up to businessDate:
// the dates after the last settled date on or before it (or businessDate
// alone when nothing was ever settled) that have no settlement. It reports
// the date started, or the job it has to wait for.
func CatchUpSettlements(ctx context.Context, client *Client, st *store.Store, businessDate string) (SettlementDailyOutput, error) {
	out := SettlementDailyOutput{Missing: []string{}}
	from := businessDate
	last, err := st.LastSettledDate(ctx, businessDate)
	switch {
	case err == nil:
		out.LastSettled = last
		if from, err = calendar.DayAfter(last); err != nil {
			return out, fmt.Errorf("jobs: last settled date: %w", err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return out, err
	}
	if from > businessDate {
		return out, nil // already settled
	}
	err = fenced(ctx, st, func(tx pgx.Tx) error {
		dates, err := st.UnsettledDatesTx(ctx, tx, from, businessDate)
		if err != nil || len(dates) == 0 {
			return err
		}
		out.Missing = dates
		_, err = EnqueueSettlementTx(ctx, client, st, tx, dates[0], SettlementRunOpts{Until: businessDate, Trigger: SettlementTriggerDaily})
		var active *RunActiveError
		if errors.As(err, &active) {
			out.WaitingOn = active.JobID
			return nil
		}
		if errors.Is(err, ErrAlreadyRan) {
			return nil // settled meanwhile, under the lock: nothing to start
		}
		if err == nil {
			out.Started = dates[0]
		}
		return err
	})
	return out, err
}
