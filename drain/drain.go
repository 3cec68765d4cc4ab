// Package drain waits until no job is outstanding — none available,
// running, pending, or scheduled within a second — as `enqueue wait` does
// before a script reads a batch's results, and shows what still runs: the
// jobs finished of the most ever outstanding, and the progress the long
// jobs record (package progress draws it).
package drain

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/progress"
	"github.com/tidemark/tidemark/report"
	"github.com/tidemark/tidemark/store"
)

// How often the bar redraws on a terminal, and a line is written otherwise
// (a log or a pipe should not get five lines a second); how often the
// queue is read.
const (
	barEvery  = 500 * time.Millisecond
	lineEvery = 2 * time.Second
	poll      = 200 * time.Millisecond
)

// Env is what a wait reads: the store counts the outstanding jobs, the River
// client lists the running ones' progress.
type Env struct {
	Client *jobs.Client
	Store  *store.Store
	TZ     *time.Location // BATCH_TZ: the estimates are shown in it
}

// Wait returns once no job is outstanding, or an error after timeout. It
// shows its progress on out: a bar when out is a terminal, a line at most
// every two seconds otherwise, and a last line once it waited at all.
func Wait(ctx context.Context, e Env, out io.Writer, timeout time.Duration) error {
	show := progress.New(out, out, "jobs", progress.Options{LineEvery: lineEvery, BarEvery: barEvery})
	defer show.Stop()
	var peak int64
	started := time.Now()
	deadline := started.Add(timeout)
	for {
		busy, err := e.Store.AnyOutstandingJobs(ctx)
		if err != nil {
			return err
		}
		if !busy {
			if show.Shown() {
				show.Stop()
				show.Event("waited %s: no job outstanding", time.Since(started).Round(100*time.Millisecond))
			}
			return nil
		}
		if time.Now().After(deadline) {
			show.Stop()
			n, err := e.Store.OutstandingJobs(ctx)
			if err != nil {
				return err
			}
			return fmt.Errorf("timed out after %s with %d job(s) still outstanding (see enqueue status)", timeout, n)
		}
		if now := time.Now(); show.Due(now) {
			n, running, err := outstanding(ctx, e)
			if err != nil {
				return err
			}
			peak = max(peak, n)
			desc := report.Running(running)
			line := fmt.Sprintf("waiting: %d job(s) outstanding", n)
			if desc != "" {
				line += "; " + desc
			}
			show.Status(now, peak-n, peak, line, desc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// outstanding counts the outstanding jobs and lists the running ones'
// progress, their estimates in BATCH_TZ as every time shown is.
func outstanding(ctx context.Context, e Env) (int64, []jobs.RunningProgress, error) {
	n, err := e.Store.OutstandingJobs(ctx)
	if err != nil {
		return 0, nil, err
	}
	running, err := jobs.ListRunningProgress(ctx, e.Client)
	if err != nil {
		return 0, nil, err
	}
	for i, r := range running {
		if r.ETA != nil {
			eta := r.ETA.In(e.TZ)
			running[i].ETA = &eta
		}
	}
	return n, running, nil
}
