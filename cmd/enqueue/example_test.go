package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// cli runs enqueue's Main on a database of its own, as a shell would run
// bin/enqueue: stdout and stderr both to the example's output, and the exit
// status printed when it is not 0.
func cli() (run func(args ...string), drop func()) {
	dbURL, dropDB, err := testkit.NewDatabase()
	if err != nil {
		panic(err)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "BATCH_TZ": "Asia/Seoul"}
	run = func(args ...string) {
		if code := Main(context.Background(), args, func(k string) string { return env[k] }, os.Stdout, os.Stdout); code != 0 {
			fmt.Println("exit", code)
		}
	}
	return run, func() { _ = dropDB() }
}

// A settlement run per business date: the rows it collects, the run
// started, a second start of the same date refused with exit 3 (the run
// exists: nothing enqueued), and the job waiting for a worker.
func Example_settlement() {
	enqueue, drop := cli()
	defer drop()
	enqueue("demo-ledger", "--rows", "3", "--members", "2", "--date", "2026-11-20")
	enqueue("settlement", "--date", "2026-11-20")
	enqueue("settlement", "--date", "2026-11-20")
	enqueue("status")
	// Output:
	// demo ledger: inserted 3 point_ledger row(s) (ids 1..3) due on 2026-11-20
	// point_settlement 2026-11-20: run 1 enqueued as job 1
	// enqueue settlement: point_settlement 2026-11-20: already queued as job 1 (available); wait for it to finish
	// exit 3
	// KIND              STATE      JOBS
	// point_settlement  available  1
}

// An orders file: each line an order request committed with its
// order_submit job; a bad line refuses the whole file with exit 2, naming
// the line.
func Example_orders() {
	enqueue, drop := cli()
	defer drop()
	orders := func(csv string) { // enqueue orders --file - < file
		f, err := os.CreateTemp("", "orders-*.csv")
		if err != nil {
			panic(err)
		}
		defer os.Remove(f.Name())
		_, _ = f.WriteString(csv)
		_, _ = f.Seek(0, 0)
		stdin := os.Stdin
		os.Stdin = f
		defer func() { os.Stdin = stdin; f.Close() }()
		enqueue("orders", "--file", "-")
	}
	orders("username,total_price,applied_year_month\n김철수,10000,2026-11\nlee,500,2026-11\n")
	orders("username,total_price,applied_year_month\npark,0,2026-11\n")
	enqueue("order-status")
	// Output:
	// order requests: inserted 2 row(s) (ids 1..2) with 2 order_submit job(s)
	// enqueue orders: --file -: line 2: total_price: must be a positive integer, got 0; nothing inserted
	// exit 2
	// PENDING  2
	// SENDING  0
	// APPLIED  0
	// FAILED   0
}

// A backfill plans before it runs: the dates of the range that completed
// are skipped, the others listed; --dry-run stops there.
func Example_backfill() {
	enqueue, drop := cli()
	defer drop()
	enqueue("backfill", "therapy-daily", "--from", "2026-11-01", "--to", "2026-11-05", "--dry-run")
	// Output:
	// backfill therapy-daily 2026-11-01..2026-11-05: 5 date(s)
	// completed, skipped (0): none
	// to run (5): 2026-11-01..2026-11-05
	// dry run: nothing enqueued
}
