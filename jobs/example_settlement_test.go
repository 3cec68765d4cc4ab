package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// One batch end to end: the ledger rows a business date's settlement
// collects, its run enqueued (the only way a run starts: EnqueueSettlement,
// the run-identity protocol), a worker working it, the date's settlement,
// and the run's audit row in batch_job_execution, Spring Batch's
// BATCH_JOB_EXECUTION over River's jobs and the archive. A second start of
// the date is refused: the run exists.
func Example_settlementEndToEnd() {
	ctx := context.Background()
	pool, st, closeDB := exampleDatabase(ctx)
	defer closeDB()
	tz, err := time.LoadLocation("Asia/Seoul")
	check(err)

	// Three rows due on 2026-11-20: two earnings, a use.
	date, err := calendar.ParseDate("2026-11-20")
	check(err)
	_, err = st.InsertLedger(ctx, store.DemoLedger(3, 2, date, tz), tz)
	check(err)

	// A worker: the same client cmd/worker runs, on the default queue.
	deps := jobs.Deps{Store: st, TZ: tz, Logger: slog.New(slog.DiscardHandler)}
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Queues: map[string]int{jobs.QueueDefault: 2},
		Retention: 24 * time.Hour, RescueAfter: time.Minute}, deps)
	check(err)
	done, stop := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer stop()
	check(client.Start(ctx))
	defer client.Stop(ctx) //nolint:errcheck

	job, err := jobs.EnqueueSettlement(ctx, client, st, "2026-11-20", jobs.SettlementRunOpts{})
	check(err)
	fmt.Println("enqueued:", job.Kind, job.State)
	select {
	case ev := <-done:
		fmt.Println("worked:", ev.Job.Kind, ev.Job.State)
	case <-time.After(30 * time.Second):
		panic("the settlement did not finish within 30s")
	}

	settled, err := st.GetSettlement(ctx, "2026-11-20")
	check(err)
	fmt.Printf("settlement 2026-11-20: earned %d, used %d, rows %d, run %d\n", settled.Earned, settled.Used, settled.ItemCount, settled.Run)
	var status string
	var read, written, skipped int64
	check(pool.QueryRow(ctx, `SELECT status, read_count, write_count, skip_count FROM batch_job_execution
		WHERE job_execution_id = $1`, job.ID).Scan(&status, &read, &written, &skipped))
	fmt.Printf("batch_job_execution: %s, read %d, written %d, skipped %d\n", status, read, written, skipped)

	_, err = jobs.EnqueueSettlement(ctx, client, st, "2026-11-20", jobs.SettlementRunOpts{})
	fmt.Println("started again:", !errors.Is(err, jobs.ErrAlreadyRan))
	// Output:
	// enqueued: point_settlement available
	// worked: point_settlement completed
	// settlement 2026-11-20: earned 300, used 120, rows 3, run 1
	// batch_job_execution: COMPLETED, read 3, written 3, skipped 0
	// started again: false
}
