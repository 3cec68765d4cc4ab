package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// Env is what a backfill runs with: the River client it starts and reads
// runs with, and the store it finds completed runs in.
type Env struct {
	Client *jobs.Client
	Store  *store.Store
	TZ     *time.Location // BATCH_TZ: business dates and the times shown
	Logger *slog.Logger   // warnings that do not stop a backfill
}

// batch is a batch that runs once per date or month.
type batch struct {
	unit string // "date" or "month"
	// limit is the last date --to may be at now, and what that date is.
	limit func(now time.Time, tz *time.Location) (last, what string)
	// items are the dates or months the range covers, oldest first.
	items func(first, last time.Time) []string
	// completed are the items in [first, last] with a completed run, each
	// with the latest such run's job.
	completed func(ctx context.Context, e Env, first, last string) (map[string]int64, error)
	// start starts item's run through the kind's run-identity protocol,
	// which refuses an item queued or running elsewhere, or completed
	// unless rerun (jobs.ErrAlreadyRan).
	start func(ctx context.Context, e Env, item string, rerun bool) (*rivertype.JobRow, error)
	// serial, when set, says why runs never overlap and why a failed run
	// stops the ones after it.
	serial string
}

// batches are the batches a backfill runs, by the name `enqueue backfill`
// takes.
var batches = map[string]batch{
	"therapy-daily": {
		unit: "date", items: calendar.Dates,
		limit: func(now time.Time, tz *time.Location) (string, string) {
			today := calendar.BusinessDate(now, tz)
			return today, fmt.Sprintf("today's business date %s in %s", today, tz)
		},
		completed: func(ctx context.Context, e Env, first, last string) (map[string]int64, error) {
			return jobs.CompletedTherapyDailyDates(ctx, e.Store, first, last)
		},
		start: func(ctx context.Context, e Env, date string, rerun bool) (*rivertype.JobRow, error) {
			return jobs.EnqueueTherapyDaily(ctx, e.Client, e.Store, date, rerun)
		},
	},
	"settlement": {
		unit: "date", items: calendar.Dates,
		limit: func(now time.Time, tz *time.Location) (string, string) {
			d := calendar.SettlementBusinessDate(now, tz)
			return d, fmt.Sprintf("the settlement's business date %s (a date is settled from 00:30 %s)", d, tz)
		},
		completed: func(ctx context.Context, e Env, first, last string) (map[string]int64, error) {
			return e.Store.SettledDates(ctx, first, last)
		},
		start: func(ctx context.Context, e Env, date string, rerun bool) (*rivertype.JobRow, error) {
			return jobs.EnqueueSettlement(ctx, e.Client, e.Store, date, jobs.SettlementRunOpts{Rerun: rerun, Trigger: jobs.SettlementTriggerBackfill})
		},
		serial: "a settlement run collects every row due on or before its date, so a later date run alongside or after a failed one would take an earlier date's rows",
	},
	"therapy-verify": {
		unit: "month", items: calendar.Months,
		limit: func(now time.Time, tz *time.Location) (string, string) {
			end := calendar.LastMonthEnd(now, tz)
			return end, fmt.Sprintf("%s, the end of the last month that is over (today is %s in %s; a month is verified once it has ended)",
				end, calendar.BusinessDate(now, tz), tz)
		},
		completed: func(ctx context.Context, e Env, first, last string) (map[string]int64, error) {
			return e.Store.CompletedVerifications(ctx, first, last)
		},
		start: func(ctx context.Context, e Env, month string, rerun bool) (*rivertype.JobRow, error) {
			return jobs.EnqueueTherapyVerifyMonth(ctx, e.Client, e.Store, month, rerun)
		},
	},
}

// Names are the batches a backfill runs, sorted.
func Names() []string {
	names := make([]string, 0, len(batches))
	for n := range batches {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
