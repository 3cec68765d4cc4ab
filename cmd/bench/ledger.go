package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/store"

	"github.com/tidemark/tidemark/jobs"
)

func init() { register("ledger", benchLedger) }

// benchLedger: a ledger of 1,000,000 rows with 100,000 due; step 1 of a real
// point_settlement job (River client, resumable cursor saved per chunk) at
// commit intervals 100, 1,000 and 10,000, against one set-based INSERT …
// SELECT + UPDATE of the same rows, resetting the rows between runs.
func benchLedger(ctx context.Context, env *benchEnv) error {
	const total, runDate, rounds = 1_000_000, "2026-11-20", 3
	start := time.Now()
	if err := generateLedger(ctx, env.pool, total, runDate); err != nil {
		return err
	}
	fmt.Printf("ledger: %d rows generated in %s\n", total, time.Since(start).Round(time.Millisecond))

	client, err := jobs.NewClient(env.pool, jobs.ClientConfig{Queues: map[string]int{"default": 1},
		Retention: env.cfg.Retention, RescueAfter: env.cfg.RescueAfter,
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}, env.deps())
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()

	setBased := func() (float64, error) {
		if err := resetSettlementRun(ctx, env.pool, runDate); err != nil {
			return 0, err
		}
		t0 := time.Now()
		n, err := collectSetBased(ctx, env.pool, runDate)
		if err != nil {
			return 0, err
		}
		el := time.Since(t0)
		fmt.Printf("  set-based INSERT…SELECT + UPDATE   %7d rows in %-9s %9.0f rows/s\n", n, el.Round(time.Millisecond), rate(int(n), el))
		return rate(int(n), el), nil
	}
	chunked := func(interval int) (float64, error) {
		if err := resetSettlementRun(ctx, env.pool, runDate); err != nil {
			return 0, err
		}
		job, err := jobs.EnqueueSettlement(ctx, client, env.store, runDate, jobs.SettlementRunOpts{Rerun: true, CommitInterval: interval})
		if err != nil {
			return 0, err
		}
		for job.FinalizedAt == nil {
			time.Sleep(20 * time.Millisecond)
			if job, err = client.JobGet(ctx, job.ID); err != nil {
				return 0, err
			}
		}
		var meta struct {
			Output  jobs.SettlementOutput `json:"output"`
			Snoozes int                   `json:"snoozes"`
		}
		if err := json.Unmarshal(job.Metadata, &meta); err != nil {
			return 0, err
		}
		if job.State != "completed" || meta.Snoozes > 0 || job.Attempt != 1 {
			return 0, fmt.Errorf("interval %d: job %d %s after %d attempt(s), %d snooze(s): step 1 time not from one attempt", interval, job.ID, job.State, job.Attempt, meta.Snoozes)
		}
		el := time.Duration(meta.Output.CollectMillis) * time.Millisecond
		r := rate(int(meta.Output.Written), el)
		fmt.Printf("  chunked, commit interval %6d    %7d rows in %-9s %9.0f rows/s  (%d chunks)\n",
			interval, meta.Output.Written, el.Round(time.Millisecond), r, meta.Output.Chunks)
		return r, nil
	}

	fmt.Printf("step 1 of the settlement for %s (%d due of %d), best of %d interleaved rounds:\n", runDate, total/10, total, rounds)
	intervals := []int{100, 1000, 10000}
	best := map[int]float64{} // interval 0: set-based
	for round := 1; round <= rounds; round++ {
		fmt.Printf(" round %d\n", round)
		r, err := setBased()
		if err != nil {
			return err
		}
		best[0] = max(best[0], r)
		for _, interval := range intervals {
			if r, err = chunked(interval); err != nil {
				return err
			}
			best[interval] = max(best[interval], r)
		}
	}
	fmt.Printf("best: set-based %.0f rows/s\n", best[0])
	for _, interval := range intervals {
		fmt.Printf("  interval %6d: %6.0f rows/s = %5.1f%% of set-based\n", interval, best[interval], 100*best[interval]/best[0])
	}
	return benchFenceCheck(ctx, env, best[1000])
}

// benchFenceCheck prints what the fence costs a chunk: a writing transaction
// that checks its attempt's lease (SELECT … FOR SHARE of job_lease, as every
// chunk does first) against the same transaction without the check,
// alternating, and the difference as a share of a chunk of 1,000 rows at
// rate rowsPerS.
func benchFenceCheck(ctx context.Context, env *benchEnv, rowsPerS float64) error {
	const n, rounds = 2000, 3
	a, scratch := store.Attempt{JobID: -1, Attempt: 1}, store.Attempt{JobID: -2, Attempt: 1}
	if _, err := env.store.ClaimLeases(ctx, []store.Attempt{a, scratch}); err != nil {
		return err
	}
	timeTx := func(fence bool) (time.Duration, error) {
		t0 := time.Now()
		for range n {
			err := env.store.InTx(ctx, func(tx pgx.Tx) error {
				if fence {
					if err := env.store.CheckLeaseTx(ctx, tx, a); err != nil {
						return err
					}
				}
				// A transaction that writes, as a chunk's does: its COMMIT
				// flushes WAL with or without the check.
				_, err := tx.Exec(ctx, `UPDATE job_lease SET claimed_at = now() WHERE job_id = $1`, scratch.JobID)
				return err
			})
			if err != nil {
				return 0, err
			}
		}
		return time.Since(t0) / n, nil
	}
	var without, with []time.Duration
	for range rounds {
		w, err := timeTx(false)
		if err != nil {
			return err
		}
		f, err := timeTx(true)
		if err != nil {
			return err
		}
		without, with = append(without, w), append(with, f)
	}
	slices.Sort(without)
	slices.Sort(with)
	cost := with[rounds/2] - without[rounds/2]
	chunk := time.Duration(float64(time.Second) * 1000 / rowsPerS)
	fmt.Printf("fencing check (SELECT … FOR SHARE of the attempt's lease, first in every chunk's transaction): %s a chunk "+
		"(a transaction %s with it, %s without; medians of %d rounds of %d) = %.2f%% of a 1,000-row chunk (%s)\n",
		cost.Round(time.Microsecond), with[rounds/2].Round(time.Microsecond), without[rounds/2].Round(time.Microsecond),
		rounds, n, 100*float64(cost)/float64(chunk), chunk.Round(time.Microsecond))
	return nil
}
