package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tidemark/tidemark/jobs"
)

// How often wait redraws its bar on a terminal, and writes a line otherwise
// (a log or a pipe should not get five lines a second).
const (
	waitBarEvery  = 500 * time.Millisecond
	waitLineEvery = 2 * time.Second
)

func cmdWait(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("wait")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long (exit 1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout: want a positive duration, got %s", *timeout)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	var show waitDisplay = &waitLines{w: e.stdout, every: waitLineEvery}
	if isTerminal(e.stdout) {
		show = &waitBar{w: e.stdout, every: waitBarEvery}
	}
	started := time.Now()
	deadline := started.Add(*timeout)
	for {
		busy, err := e.store.AnyOutstandingJobs(ctx)
		if err != nil {
			return err
		}
		if !busy {
			show.finish(time.Since(started))
			return nil
		}
		if time.Now().After(deadline) {
			show.stop()
			n, err := e.store.OutstandingJobs(ctx)
			if err != nil {
				return err
			}
			return fmt.Errorf("timed out after %s with %d job(s) still outstanding (see enqueue status)", *timeout, n)
		}
		if show.due(time.Now()) {
			n, err := e.store.OutstandingJobs(ctx)
			if err != nil {
				return err
			}
			running, err := jobs.ListRunningProgress(ctx, e.client)
			if err != nil {
				return err
			}
			for i, r := range running { // shown in BATCH_TZ, as every time is
				if r.ETA != nil {
					eta := r.ETA.In(e.cfg.TZ)
					running[i].ETA = &eta
				}
			}
			show.show(time.Now(), n, running)
		}
		select {
		case <-ctx.Done():
			show.stop()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// waitDisplay shows what wait is waiting for.
type waitDisplay interface {
	due(now time.Time) bool
	show(now time.Time, outstanding int64, running []jobs.RunningProgress)
	// finish is called when nothing is outstanding, stop when wait gives up.
	finish(waited time.Duration)
	stop()
}

// waitLines writes one plain line at most every `every`.
type waitLines struct {
	w     io.Writer
	every time.Duration
	last  time.Time
}

func (l *waitLines) due(now time.Time) bool { return l.last.IsZero() || now.Sub(l.last) >= l.every }

func (l *waitLines) show(now time.Time, outstanding int64, running []jobs.RunningProgress) {
	l.last = now
	line := fmt.Sprintf("waiting: %d job(s) outstanding", outstanding)
	if s := describeRunning(running); s != "" {
		line += "; " + s
	}
	fmt.Fprintln(l.w, line)
}

func (l *waitLines) finish(waited time.Duration) {
	if !l.last.IsZero() {
		fmt.Fprintf(l.w, "waited %s: no job outstanding\n", waited.Round(100*time.Millisecond))
	}
}

func (l *waitLines) stop() {}

// waitBar draws a bar of the jobs finished out of the most ever outstanding,
// described by the progress of the running long jobs.
type waitBar struct {
	w     io.Writer
	every time.Duration
	last  time.Time
	bar   *progressbar.ProgressBar
	peak  int64
}

func (b *waitBar) due(now time.Time) bool { return b.last.IsZero() || now.Sub(b.last) >= b.every }

func (b *waitBar) show(now time.Time, outstanding int64, running []jobs.RunningProgress) {
	b.last = now
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(outstanding, progressbar.OptionSetWriter(b.w), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("jobs"))
	}
	if outstanding > b.peak {
		b.peak = outstanding
		b.bar.ChangeMax64(b.peak)
	}
	desc := "jobs"
	if s := describeRunning(running); s != "" {
		desc = s
	}
	b.bar.Describe(desc)
	_ = b.bar.Set64(b.peak - outstanding)
}

func (b *waitBar) finish(waited time.Duration) {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintf(b.w, "waited %s: no job outstanding\n", waited.Round(100*time.Millisecond))
	}
}

func (b *waitBar) stop() {
	if b.bar != nil {
		_ = b.bar.Clear()
	}
}

// describeRunning names each running job that records its progress (at most
// five) and counts the others by kind.
func describeRunning(running []jobs.RunningProgress) string {
	var parts []string
	others := map[string]int{}
	for _, r := range running {
		if !r.Recorded || len(parts) >= 5 {
			others[r.Kind]++
			continue
		}
		parts = append(parts, formatProgress(r))
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

// formatProgress is "point_settlement #12 400/1000 rows (40%), 512 rows/s,
// done ~14:43:10 KST", the time in the ETA's zone (BATCH_TZ).
func formatProgress(r jobs.RunningProgress) string {
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
