package main

import (
	"context"

	"github.com/tidemark/tidemark/report"
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
	return report.JobCounts(e.stdout, counts)
}
