package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/redact"
	"github.com/tidemark/tidemark/store"
)

func init() {
	commands["runs"] = command{"print each batch's run per business date: state, counts, duration, failures", cmdRuns}
}

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
		return usagef("--days: %d is out of range; want 1 to %d", *days, maxRunDays)
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
	return printRuns(e.stdout, runs)
}

// printRuns writes runs as a table, one line per date and batch.
func printRuns(w io.Writer, runs []store.BatchRun) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tBATCH\tSTATE\tCOUNTS\tDURATION\tFAILURES\tJOBS")
	for _, r := range runs {
		state, counts, dur, jobs := r.State, "", "", ""
		if state == store.RunNone {
			state = "-"
		} else {
			parts := make([]string, len(r.Counts))
			for i, c := range r.Counts {
				parts[i] = fmt.Sprintf("%s=%d", c.Name, c.Value)
			}
			counts = strings.Join(parts, " ")
			dur = r.DurationText()
			jobs = joinIDs(r.JobIDs)
		}
		failures := fmt.Sprint(r.Failures)
		if len(r.FailedJobIDs) > 0 {
			failures += " (jobs " + joinIDs(r.FailedJobIDs) + ")"
		}
		if r.LastError != "" {
			failures += ": " + truncate(redact.Text(strings.Join(strings.Fields(r.LastError), " ")), 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.BusinessDate, r.Kind, state, counts, dur, failures, jobs)
	}
	return tw.Flush()
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
