package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/tidemark/tidemark/backfill"
	"github.com/tidemark/tidemark/internal/cliflag"
)

func cmdBackfill(ctx context.Context, e *env, args []string) error {
	names := backfill.Names()
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs := e.newFlagSet("backfill <" + strings.Join(names, "|") + ">")
	var o backfill.Options
	fs.StringVar(&o.From, "from", "", "first business date of the range, YYYY-MM-DD (required)")
	fs.StringVar(&o.To, "to", "", "last business date of the range, YYYY-MM-DD (required); therapy-verify runs each month the range touches")
	dryRun := fs.Bool("dry-run", false, "print the dates completed and the dates to run, and change nothing")
	fs.BoolVar(&o.Rerun, "rerun", false, "run every date of the range, the completed ones again as reruns")
	fs.IntVar(&o.Parallel, "parallel", backfill.DefaultParallel, fmt.Sprintf("runs at once, 1..%d (settlement: one at a time)", backfill.MaxParallel))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "" {
		return cliflag.Usagef("missing batch: enqueue backfill <%s> --from YYYY-MM-DD --to YYYY-MM-DD", strings.Join(names, "|"))
	}
	fs.Visit(func(f *flag.Flag) { o.ParallelSet = o.ParallelSet || f.Name == "parallel" })
	b, err := backfill.Plan(name, o, time.Now(), e.cfg.TZ)
	var bad *backfill.InputError
	if errors.As(err, &bad) {
		return cliflag.Usagef("%v", bad)
	}
	if err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	be := e.backfillEnv()
	if err := b.Report(ctx, be, e.stdout); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintln(e.stdout, "dry run: nothing enqueued")
		return nil
	}
	return b.Run(ctx, be, e.stdout, e.stderr)
}
