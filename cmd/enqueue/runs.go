package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/report"
)

// maxRunDays bounds --days: the read is per date, and jobs are retained for
// JOB_RETENTION (30 days by default) anyway.
const maxRunDays = 366

func cmdRuns(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("runs")
	days := fs.Int("days", 14, fmt.Sprintf("business dates to show, today's (BATCH_TZ) and the ones before (1-%d)", maxRunDays))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *days < 1 || *days > maxRunDays {
		return cliflag.Usagef("--days: %d is out of range; want 1 to %d", *days, maxRunDays)
	}
	to := calendar.BusinessDate(time.Now(), e.cfg.TZ)
	from := calendar.BusinessDate(time.Now().In(e.cfg.TZ).AddDate(0, 0, -(*days-1)), e.cfg.TZ)
	if err := e.open(ctx); err != nil {
		return err
	}
	runs, err := e.store.BatchRuns(ctx, from, to, e.cfg.TZ)
	if err != nil {
		return err
	}
	return report.Runs(e.stdout, runs)
}
