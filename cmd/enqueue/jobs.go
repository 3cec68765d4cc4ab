package main

import (
	"context"
	"fmt"
	"text/tabwriter"

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
