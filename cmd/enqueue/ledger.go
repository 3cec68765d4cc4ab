package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func cmdSettlement(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("settlement")
	date := fs.String("date", "", "business date to settle, YYYY-MM-DD (required): collects rows with process_on <= date")
	rerun := fs.Bool("rerun", false, "run again for a date already settled: recompute its settlement and collect rows still due")
	interval := fs.Int("commit-interval", jobs.DefaultCommitInterval, "due rows per chunk (one transaction each)")
	skipLimit := fs.Int("skip-limit", jobs.DefaultSkipLimit, "rows the run may skip before it fails")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cliflag.Date("date", date, ""); err != nil {
		return err
	}
	if *interval < 1 || *interval > jobs.MaxCommitInterval {
		return cliflag.Usagef("--commit-interval: want 1..%d, got %d", jobs.MaxCommitInterval, *interval)
	}
	if *skipLimit < 0 {
		return cliflag.Usagef("--skip-limit: want 0 or more, got %d", *skipLimit)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	job, err := jobs.EnqueueSettlement(ctx, e.client, e.store, *date, jobs.SettlementRunOpts{
		Rerun: *rerun, Trigger: jobs.SettlementTriggerCLI, CommitInterval: *interval, SkipLimit: skipLimit,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "point_settlement %s: run %d enqueued as job %d\n", *date, jobs.SettlementRun(job), job.ID)
	return nil
}

// maxDemoLedgerRows bounds one demo-ledger call: the rows go in one statement.
const maxDemoLedgerRows = 100_000

func cmdDemoLedger(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("demo-ledger")
	rows := fs.Int("rows", 3000, "point_ledger rows to insert")
	members := fs.Int("members", 1000, "members the rows are spread over (ids 1..N)")
	date := fs.String("date", "", "business date whose settlement collects them, YYYY-MM-DD (default: today in BATCH_TZ)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rows < 1 || *rows > maxDemoLedgerRows {
		return cliflag.Usagef("--rows: want 1..%d, got %d", maxDemoLedgerRows, *rows)
	}
	if *members < 1 || *members > 10_000_000 {
		return cliflag.Usagef("--members: want 1..10000000, got %d", *members)
	}
	if err := cliflag.Date("date", date, calendar.BusinessDate(time.Now(), e.cfg.TZ)); err != nil {
		return err
	}
	d, _ := calendar.ParseDate(*date)
	entries := store.DemoLedger(*rows, *members, d, e.cfg.TZ)
	if err := e.open(ctx); err != nil {
		return err
	}
	ids, err := e.store.InsertLedger(ctx, entries, e.cfg.TZ)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "demo ledger: inserted %d point_ledger row(s) (ids %d..%d) due on %s\n", len(ids), ids[0], ids[len(ids)-1], *date)
	return nil
}

func cmdReprocess(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("reprocess")
	ids := fs.String("ledger-id", "", "comma-separated point_ledger ids, all already processed (required)")
	on := fs.String("on", "", "business date whose run collects them again, YYYY-MM-DD (default: the next business date)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ledgerIDs, err := requireIDs(*ids)
	if err != nil {
		return err
	}
	if err := cliflag.Date("on", on, calendar.NextBusinessDate(time.Now(), e.cfg.TZ)); err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	if err := ledgerErr(e.store.ReprocessLedger(ctx, ledgerIDs, *on)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "reprocess: %d ledger row(s) set to be processed on %s\n", len(ledgerIDs), *on)
	return nil
}

func cmdDefer(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("defer")
	ids := fs.String("ledger-id", "", "comma-separated point_ledger ids, all unprocessed (required)")
	to := fs.String("to", "", "future business date to process them on, YYYY-MM-DD (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ledgerIDs, err := requireIDs(*ids)
	if err != nil {
		return err
	}
	if err := cliflag.Date("to", to, ""); err != nil {
		return err
	}
	if today := calendar.BusinessDate(time.Now(), e.cfg.TZ); *to <= today {
		return cliflag.Usagef("--to %s is not in the future (today is %s in %s); nothing changed", *to, today, e.cfg.TZ)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	if err := ledgerErr(e.store.DeferLedger(ctx, ledgerIDs, *to)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "defer: %d ledger row(s) will be processed on %s\n", len(ledgerIDs), *to)
	return nil
}

func cmdReady(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("ready")
	ids := fs.String("ledger-id", "", "comma-separated point_ledger ids whose preceding step finished (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ledgerIDs, err := requireIDs(*ids)
	if err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	n, err := e.store.MarkLedgerReady(ctx, ledgerIDs)
	if err := ledgerErr(err); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ready: %d ledger row(s) marked ready (%d already were); the next run collects those due\n", n, int64(len(ledgerIDs))-n)
	return nil
}

func requireIDs(s string) ([]int64, error) {
	if s == "" {
		return nil, cliflag.Usagef("--ledger-id is required (1,2,3)")
	}
	return cliflag.IDs("ledger-id", s)
}

// ledgerErr makes unknown ids a usage error, like unknown users elsewhere;
// rows in the wrong state are a runtime refusal (exit 1).
func ledgerErr(err error) error {
	var le *store.LedgerRowsError
	if errors.As(err, &le) {
		if le.Unknown {
			return cliflag.Usagef("--ledger-id: %v", le)
		}
		return le
	}
	return err
}
