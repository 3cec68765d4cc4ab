package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

func cmdRetry(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("retry")
	kind := fs.String("kind", "", "job kind to retry, e.g. therapy_stats (required)")
	state := fs.String("state", "discarded", "state of the jobs to retry: discarded or cancelled")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *kind == "" {
		return usagef("--kind is required")
	}
	var st rivertype.JobState
	switch *state {
	case "discarded":
		st = rivertype.JobStateDiscarded
	case "cancelled":
		st = rivertype.JobStateCancelled
	default:
		return usagef("--state: want discarded or cancelled, got %q", *state)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	params := river.NewJobListParams().Kinds(*kind).States(st).First(1000)
	retried := 0
	for {
		res, err := e.client.JobList(ctx, params)
		if err != nil {
			return fmt.Errorf("list %s jobs: %w", *kind, err)
		}
		for _, j := range res.Jobs {
			if _, err := e.client.JobRetry(ctx, j.ID); err != nil {
				return fmt.Errorf("retry job %d: %w (retried %d before it)", j.ID, err, retried)
			}
			retried++
		}
		if len(res.Jobs) < 1000 {
			break
		}
		params = params.After(res.LastCursor)
	}
	fmt.Fprintf(e.stdout, "retried %d %s %s job(s)\n", retried, *state, *kind)
	return nil
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("status")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	counts, err := e.store.JobCounts(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATE\tJOBS")
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Kind, c.State, c.Count)
	}
	return tw.Flush()
}

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
	deadline := time.Now().Add(*timeout)
	for {
		busy, err := e.store.AnyOutstandingJobs(ctx)
		if err != nil {
			return err
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			n, err := e.store.OutstandingJobs(ctx)
			if err != nil {
				return err
			}
			return fmt.Errorf("timed out after %s with %d job(s) still outstanding (see enqueue status)", *timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
