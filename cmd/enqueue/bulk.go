package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/user"
	"strings"

	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/bulk"
	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/report"
)

func cmdRetry(ctx context.Context, e *env, args []string) error {
	return runBulk(ctx, e, bulk.Retry, args)
}

func cmdCancel(ctx context.Context, e *env, args []string) error {
	return runBulk(ctx, e, bulk.Cancel, args)
}

// runBulk parses a's filter flags, refuses a filter that cannot be used
// before touching the database, then counts (--dry-run) or acts.
func runBulk(ctx context.Context, e *env, a bulk.Action, args []string) error {
	allowed, byDefault := a.States()
	window := map[bulk.Action]string{bulk.Retry: "finished (finalized_at)", bulk.Cancel: "enqueued (created_at)"}[a]
	fs := e.newFlagSet(string(a))
	kinds := fs.String("kind", "", "job kinds, comma-separated, e.g. therapy_stats,order_submit")
	states := fs.String("state", "", fmt.Sprintf("states, comma-separated, of %s (default %s)", joinNames(allowed), joinNames(byDefault)))
	queues := fs.String("queue", "", "queues, comma-separated")
	since := fs.String("since", "", "jobs "+window+" at or after this RFC 3339 time, or from this date (YYYY-MM-DD in BATCH_TZ)")
	until := fs.String("until", "", "jobs "+window+" before this RFC 3339 time, or up to and including this date (YYYY-MM-DD in BATCH_TZ)")
	errorContains := fs.String("error-contains", "", "text the job's last error contains (any case)")
	dryRun := fs.Bool("dry-run", false, "print how many jobs match, by kind and state, and change nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	f, err := bulk.ParseFilter(a, bulk.FilterText{Kinds: *kinds, States: *states, Queues: *queues, Since: *since, Until: *until,
		ErrorContains: *errorContains, Given: given}, e.cfg.TZ, jobs.Kinds())
	if err != nil {
		var fe *bulk.FilterError
		if errors.As(err, &fe) && fe.Filter != "" {
			return cliflag.Usagef("--%s: %s", fe.Filter, fe.Msg)
		}
		return cliflag.Usagef("%v", err)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	if *dryRun {
		total, byKindState, err := bulk.Count(ctx, e.client, a, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "dry run: would %s %d job(s); nothing changed\n", a, total)
		if total == 0 {
			return nil
		}
		return report.JobCounts(e.stdout, byKindState)
	}
	res, err := bulk.Run(ctx, e.client, e.store, a, f, bulk.Opts{By: e.operator})
	if err != nil {
		return err
	}
	report.Bulk(e.stdout, a, res)
	return nil
}

func joinNames(states []rivertype.JobState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

// operatorName is who runs the command, for the record: $USER, else the OS
// user, else "" (unknown).
func operatorName(getenv func(string) string) string {
	if u := strings.TrimSpace(getenv("USER")); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}
