package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tidemark/tidemark/store"
)

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
	return printJobCounts(e.stdout, counts)
}

// printJobCounts prints counts as a KIND STATE JOBS table.
func printJobCounts(w io.Writer, counts []store.KindStateCount) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATE\tJOBS")
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Kind, c.State, c.Count)
	}
	return tw.Flush()
}
