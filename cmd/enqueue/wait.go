package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/progress"
	"github.com/tidemark/tidemark/report"
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
	// The bar counts the jobs finished of the most ever outstanding.
	show := progress.New(e.stdout, e.stdout, "jobs", progress.Options{LineEvery: waitLineEvery, BarEvery: waitBarEvery})
	defer show.Stop()
	var peak int64
	started := time.Now()
	deadline := started.Add(*timeout)
	for {
		busy, err := e.store.AnyOutstandingJobs(ctx)
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
			n, err := e.store.OutstandingJobs(ctx)
			if err != nil {
				return err
			}
			return fmt.Errorf("timed out after %s with %d job(s) still outstanding (see enqueue status)", *timeout, n)
		}
		if now := time.Now(); show.Due(now) {
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
			peak = max(peak, n)
			desc := report.Running(running)
			line := fmt.Sprintf("%d job(s) outstanding", n)
			if desc != "" {
				line += "; " + desc
			}
			show.Status(now, peak-n, peak, line, desc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
