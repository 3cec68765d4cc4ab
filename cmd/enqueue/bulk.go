package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/user"
	"slices"
	"strings"

	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/bulk"
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
	var f bulk.Filter
	var err error
	if f.Kinds, err = parseNames(fs, "kind", *kinds); err != nil {
		return err
	}
	names, err := parseNames(fs, "state", *states)
	if err != nil {
		return err
	}
	for _, s := range names {
		f.States = append(f.States, rivertype.JobState(s))
	}
	if f.Queues, err = parseNames(fs, "queue", *queues); err != nil {
		return err
	}
	if given(fs, "since") {
		if f.Since, err = bulk.ParseTime(*since, e.cfg.TZ, false); err != nil {
			return usagef("--since: %v", err)
		}
	}
	if given(fs, "until") {
		if f.Until, err = bulk.ParseTime(*until, e.cfg.TZ, true); err != nil {
			return usagef("--until: %v", err)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return usagef("--since %s is not before --until %s: no job could match", *since, *until)
	}
	if given(fs, "error-contains") && *errorContains == "" {
		return usagef("--error-contains: empty text would match every error; leave the flag out instead")
	}
	f.ErrorContains = *errorContains
	if err := f.Validate(a, jobs.Kinds()); err != nil {
		var fe *bulk.FilterError
		if errors.As(err, &fe) && fe.Filter != "" {
			return usagef("--%s: %s", fe.Filter, fe.Msg)
		}
		return usagef("%v", err)
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
	past := map[bulk.Action]string{bulk.Retry: "retried", bulk.Cancel: "cancelled"}[a]
	fmt.Fprintf(e.stdout, "%s %d of %d matching job(s) (operator_action %d)\n", past, res.Acted-res.Running, res.Matched, res.ActionID)
	if res.Running > 0 {
		fmt.Fprintf(e.stdout, "%d running job(s) asked to stop: each ends cancelled when its worker returns\n", res.Running)
	}
	for _, why := range []bulk.Skip{bulk.SkipDuplicate, bulk.SkipChanged} {
		if n := res.Skipped[why]; n > 0 {
			fmt.Fprintf(e.stdout, "not %s: %d job(s), as %s (jobs %s)\n", past, n, why, report.IDs(res.SkippedIDs[why]))
		}
	}
	return nil
}

// parseNames parses flag name's value "a,b" into distinct non-empty names,
// in the order given; nil when the flag was not given.
func parseNames(fs *flag.FlagSet, name, s string) ([]string, error) {
	if !given(fs, name) {
		return nil, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, usagef("--%s: an empty name in %q", name, s)
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out, nil
}

// given reports whether flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
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
