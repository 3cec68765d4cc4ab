package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/report"
	"github.com/tidemark/tidemark/store"
)

func cmdOrders(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("orders")
	file := fs.String("file", "", "CSV file, header "+order.CSVHeader+" (required; - reads stdin)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return cliflag.Usagef("--file is required (CSV with header %s)", order.CSVHeader)
	}
	var r io.Reader = os.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return cliflag.Usagef("--file: %v", err)
		}
		defer f.Close()
		r = f
	}
	reqs, lines, err := order.ReadCSV(r)
	if err != nil {
		return cliflag.Usagef("--file %s: %v; nothing inserted", *file, err)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	created, err := jobs.CreateOrderRequests(ctx, e.client, e.store, reqs)
	var dup *store.DuplicateOrderRequestError
	if errors.As(err, &dup) {
		if dup.Index >= 0 {
			return cliflag.Usagef("--file %s: line %d: %v; nothing inserted", *file, lines[dup.Index], dup)
		}
		return cliflag.Usagef("--file %s: %v; nothing inserted", *file, dup)
	}
	if err != nil {
		return fmt.Errorf("%w; nothing inserted", err)
	}
	// A file is up to 100,000 order_submit jobs in one commit, which the
	// outbound workers fetch at once with plans made for a smaller river_job.
	if _, err := e.store.AnalyzeIfStale(ctx, store.TableRiverJob); err != nil {
		e.logger.WarnContext(ctx, "enqueue: river_job's statistics not refreshed", "error", err)
	}
	fmt.Fprintf(e.stdout, "order requests: inserted %d row(s) (ids %d..%d) with %d order_submit job(s)\n",
		len(created), created[0].ID, created[len(created)-1].ID, len(created))
	return nil
}

func cmdOrderStatus(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("order-status")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	counts, err := e.store.OrderStatusCounts(ctx)
	if err != nil {
		return err
	}
	report.OrderStatus(e.stdout, counts)
	return nil
}
