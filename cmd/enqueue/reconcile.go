package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/orderapi"
)

func cmdReconcile(ctx context.Context, e *env, args []string) error {
	names := make([]string, 0, len(jobs.ReconcileChecks))
	for n := range jobs.ReconcileChecks {
		names = append(names, n)
	}
	sort.Strings(names)
	fs := e.newFlagSet("reconcile")
	check := fs.String("check", "", "check to run: "+strings.Join(names, ", ")+" (required)")
	dryRun := fs.Bool("dry-run", false, "report without repairing anything")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	run, ok := jobs.ReconcileChecks[*check]
	if !ok {
		return cliflag.Usagef("--check: unknown check %q; want one of %s", *check, strings.Join(names, ", "))
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	deps := jobs.Deps{Store: e.store, TZ: e.cfg.TZ, Logger: e.logger, River: e.client, ReconcileGrace: e.cfg.CouponReconcileGrace}
	if *check == "coupon" {
		gate, closeGate, err := e.openGate(ctx)
		if err != nil {
			return err
		}
		defer closeGate()
		deps.Gate = gate
	}
	if *check == "orders" {
		deps.OrderAPI = orderapi.New(e.cfg.OrderAPIURL, e.cfg.OrderCallTimeout, 4)
	}
	rep, err := run(ctx, deps, *dryRun)
	if rep != nil {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			fmt.Fprintln(e.stdout, string(b))
		}
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", *check, err)
	}
	return nil
}
