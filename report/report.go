// Package report writes the text reports `enqueue` prints: the runs per
// business date, the job counts, a month's therapy summary, the progress of
// running jobs. Every report is plain text, one line per item (tables
// aligned with text/tabwriter), with error text redacted and shortened, so
// it reads the same in a terminal, a log and a script.
package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tidemark/tidemark/bulk"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/redact"
	"github.com/tidemark/tidemark/store"
)

// Runs writes runs as a table, one line per date and batch.
func Runs(w io.Writer, runs []store.BatchRun) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tBATCH\tSTATE\tCOUNTS\tDURATION\tFAILURES\tJOBS")
	for _, r := range runs {
		state, counts, dur, ids := r.State, "", "", ""
		if state == store.RunNone {
			state = "-"
		} else {
			parts := make([]string, len(r.Counts))
			for i, c := range r.Counts {
				parts[i] = fmt.Sprintf("%s=%d", c.Name, c.Value)
			}
			counts = strings.Join(parts, " ")
			dur = r.DurationText()
			ids = IDs(r.JobIDs)
		}
		failures := fmt.Sprint(r.Failures)
		if len(r.FailedJobIDs) > 0 {
			failures += " (jobs " + IDs(r.FailedJobIDs) + ")"
		}
		if r.LastError != "" {
			failures += ": " + ErrorText(r.LastError, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.BusinessDate, r.Kind, state, counts, dur, failures, ids)
	}
	return tw.Flush()
}

// JobCounts writes counts as a KIND STATE JOBS table.
func JobCounts(w io.Writer, counts []store.KindStateCount) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATE\tJOBS")
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Kind, c.State, c.Count)
	}
	return tw.Flush()
}

// TherapyMonth writes a month's therapy statistics summary, and its top
// users when there are any.
func TherapyMonth(w io.Writer, month string, tz *time.Location, sum store.TherapyMonthSummary, top []store.TherapyStatistics) {
	fmt.Fprintf(w, "therapy statistics for %s (%s)\n", month, tz)
	fmt.Fprintf(w, "  users aggregated     %d\n", sum.Users)
	fmt.Fprintf(w, "  performs             %d (%d completed)\n", sum.Performs, sum.Completed)
	fmt.Fprintf(w, "  total duration       %s\n", time.Duration(sum.DurationSeconds)*time.Second)
	fmt.Fprintf(w, "  active user-days     %d\n", sum.ActiveDays)
	fmt.Fprintf(w, "  batch log (jobs)     SUCCESS %d, IN_PROGRESS %d, FAIL %d\n",
		sum.LogStatus["SUCCESS"], sum.LogStatus["IN_PROGRESS"], sum.LogStatus["FAIL"])
	if len(top) == 0 {
		return
	}
	fmt.Fprintf(w, "  top %d users by performs:\n", len(top))
	for _, r := range top {
		fmt.Fprintf(w, "    user %-6d performs %-3d completed %-3d active days %-2d duration %s\n",
			r.TherapyUserID, r.PerformCount, r.CompletedCount, r.ActiveDays, time.Duration(r.TotalDurationSeconds)*time.Second)
	}
}

// Running names each running job that records its progress (at most five)
// and counts the others by kind.
func Running(running []jobs.RunningProgress) string {
	var parts []string
	others := map[string]int{}
	for _, r := range running {
		if !r.Recorded || len(parts) >= 5 {
			others[r.Kind]++
			continue
		}
		parts = append(parts, Progress(r))
	}
	kinds := make([]string, 0, len(others))
	for k := range others {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s running", others[k], k))
	}
	return strings.Join(parts, "; ")
}

// Progress is "point_settlement #12 400/1000 rows (40%), 512 rows/s,
// done ~14:43:10 KST", the time in the ETA's zone (BATCH_TZ).
func Progress(r jobs.RunningProgress) string {
	s := fmt.Sprintf("%s #%d %d", r.Kind, r.JobID, r.Done)
	if r.Total > 0 {
		s += fmt.Sprintf("/%d %s (%d%%)", r.Total, r.Unit, r.Done*100/r.Total)
	} else {
		s += " " + r.Unit
	}
	if r.RatePerS > 0 {
		s += fmt.Sprintf(", %.0f %s/s", r.RatePerS, r.Unit)
	}
	if r.ETA != nil {
		s += ", done ~" + r.ETA.Format("15:04:05 MST")
	}
	return s
}

// IDs is "812,813,814".
func IDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

// ErrorText is an error message as a report shows it: on one line, its
// secrets redacted, at most n characters.
func ErrorText(msg string, n int) string {
	s := redact.Line(msg)
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// OrderStatus writes the order requests per status, the protocol's statuses
// first in their order (zero included), any other after them by name.
func OrderStatus(w io.Writer, counts map[string]int64) {
	names := order.Statuses()
	known := len(names)
	for k := range counts {
		if !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	sort.Strings(names[known:])
	for _, n := range names {
		fmt.Fprintf(w, "%-8s %d\n", n, counts[n])
	}
}

// Bulk writes what a retry or cancel did: the jobs it acted on, the running
// ones asked to stop, and those left alone and why.
func Bulk(w io.Writer, a bulk.Action, res bulk.Result) {
	past := map[bulk.Action]string{bulk.Retry: "retried", bulk.Cancel: "cancelled"}[a]
	fmt.Fprintf(w, "%s %d of %d matching job(s) (operator_action %d)\n", past, res.Acted-res.Running, res.Matched, res.ActionID)
	if res.Running > 0 {
		fmt.Fprintf(w, "%d running job(s) asked to stop: each ends cancelled when its worker returns\n", res.Running)
	}
	for _, why := range []bulk.Skip{bulk.SkipDuplicate, bulk.SkipChanged} {
		if n := res.Skipped[why]; n > 0 {
			fmt.Fprintf(w, "not %s: %d job(s), as %s (jobs %s)\n", past, n, why, IDs(res.SkippedIDs[why]))
		}
	}
}
