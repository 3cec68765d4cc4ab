package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/backfill"
	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/report"
	"github.com/tidemark/tidemark/store"
)

func cmdTherapyStats(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("therapy-stats")
	month := fs.String("month", "", "month to aggregate, YYYY-MM (required)")
	users := fs.String("user", "", "comma-separated therapy user ids")
	allActive := fs.Bool("all-active", false, "every ACTIVE therapy user")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *month == "" {
		return cliflag.Usagef("--month is required (YYYY-MM)")
	}
	year, mon, err := calendar.ParseYearMonth(*month)
	if err != nil {
		return cliflag.Usagef("--month %q: %v", *month, err)
	}
	if (*users == "") == !*allActive {
		return cliflag.Usagef("give exactly one of --user 1,2,3 or --all-active")
	}
	var ids []int64
	if *users != "" {
		if ids, err = cliflag.IDs("user", *users); err != nil {
			return err
		}
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	err = backfill.TherapyStats(ctx, e.backfillEnv(), year, mon, ids, e.stdout, e.stderr)
	var bad *backfill.InputError
	if errors.As(err, &bad) {
		return cliflag.Usagef("%v", bad)
	}
	return err
}

func cmdTherapyDaily(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("therapy-daily")
	date := fs.String("date", "", "business date YYYY-MM-DD (default: today in BATCH_TZ); aggregates the month of the day before")
	rerun := fs.Bool("rerun", false, "run again for a date whose run already completed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *date == "" {
		*date = calendar.BusinessDate(time.Now(), e.cfg.TZ)
	}
	year, mon, err := calendar.TherapyMonthFor(*date)
	if err != nil {
		return cliflag.Usagef("--date: %v", err)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	job, err := jobs.EnqueueTherapyDaily(ctx, e.client, e.store, *date, *rerun)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "therapy_daily %s: job %d enqueued; it aggregates %04d-%02d\n", *date, job.ID, year, mon)
	return nil
}

func cmdTherapyReport(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("therapy-report")
	month := fs.String("month", "", "month YYYY-MM (required)")
	top := fs.Int("top", 5, "also list this many users with the most performs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	year, mon, err := calendar.ParseYearMonth(*month)
	if err != nil {
		return cliflag.Usagef("--month %q: %v", *month, err)
	}
	if *top < 0 {
		return cliflag.Usagef("--top: want 0 or more")
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	sum, err := e.store.SummarizeTherapyMonth(ctx, year, mon)
	if err != nil {
		return err
	}
	var rows []store.TherapyStatistics
	if *top > 0 {
		if rows, err = e.store.TopTherapyStatistics(ctx, year, mon, *top); err != nil {
			return err
		}
	}
	report.TherapyMonth(e.stdout, *month, e.cfg.TZ, sum, rows)
	return nil
}

func cmdDemoData(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("demo-data")
	users := fs.Int("users", 1000, "number of ACTIVE users (ids 1..N)")
	performs := fs.Int("performs", 30, "perform rows per user")
	month := fs.String("month", "", "month of the performs, YYYY-MM (default: the month the next daily run aggregates)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *users < 1 || *users > 10_000_000 {
		return cliflag.Usagef("--users: want 1..10000000, got %d", *users)
	}
	if *performs < 1 || *performs > 1000 {
		return cliflag.Usagef("--performs: want 1..1000, got %d", *performs)
	}
	now := time.Now().In(e.cfg.TZ)
	year, mon := calendar.TherapyMonthOf(now)
	days := 0
	if *month != "" {
		var err error
		if year, mon, err = calendar.ParseYearMonth(*month); err != nil {
			return cliflag.Usagef("--month %q: %v", *month, err)
		}
	} else if now.Day() > 1 {
		days = now.Day() - 1 // only days that have ended
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	nu, np, err := e.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: *users, PerformsPerUser: *performs, Year: year, Month: mon, Days: days}, e.cfg.TZ)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "demo data for %04d-%02d: inserted %d user(s) and %d perform row(s) (existing users kept as they were)\n", year, mon, nu, np)
	return nil
}
