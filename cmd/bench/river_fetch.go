package main

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tidemark/tidemark/jobs"
)

func init() { register("riverfetch", benchRiverFetch) }

// benchRiverFetch measures River alone on the orders bench's shape: 64
// workers, 10,000 jobs that each sleep 20 ms and touch nothing, with River's
// default poll interval and with the outbound queue's settings. It is why
// the outbound queue polls (see jobs.OutboundFetchPollInterval): the bound
// 64 ÷ 20 ms is out of reach for River itself when slots wait for waves.
func benchRiverFetch(ctx context.Context, env *benchEnv) error {
	for _, c := range []struct {
		name           string
		cooldown, poll time.Duration
	}{
		{"River's poll default, FETCH_COOLDOWN", env.cfg.FetchCooldown, 0},
		{"outbound queue's settings", jobs.OutboundFetchCooldown, jobs.OutboundFetchPollInterval},
	} {
		rate, err := runSleepJobs(ctx, env, c.cooldown, c.poll)
		if err != nil {
			return err
		}
		poll := "1s (default)"
		if c.poll > 0 {
			poll = c.poll.String()
		}
		fmt.Printf("%s (cooldown %s, poll %s): %.0f jobs/s = %.0f%% of 64 / 20 ms\n",
			c.name, c.cooldown, poll, rate, 100*rate/(64/0.020))
	}
	return nil
}

// sleepArgs is a job that sleeps 20 ms, like a call to a partner that
// answers in 20 ms, and does nothing else.
type sleepArgs struct {
	N int `json:"n"`
}

func (sleepArgs) Kind() string { return "bench_sleep" }

func (sleepArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "bench_sleep"} }

type sleepWorker struct {
	river.WorkerDefaults[sleepArgs]
}

func (sleepWorker) Work(ctx context.Context, _ *river.Job[sleepArgs]) error {
	select {
	case <-time.After(20 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func runSleepJobs(ctx context.Context, env *benchEnv, cooldown, poll time.Duration) (float64, error) {
	const n = 10_000
	workers := river.NewWorkers()
	river.AddWorker(workers, sleepWorker{})
	inserter, err := river.NewClient(riverpgxv5.New(env.pool), &river.Config{Workers: workers})
	if err != nil {
		return 0, err
	}
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: sleepArgs{N: i}}
	}
	if _, err := inserter.InsertManyFast(ctx, params); err != nil {
		return 0, err
	}
	client, err := river.NewClient(riverpgxv5.New(env.pool), &river.Config{
		Workers: workers,
		Queues:  map[string]river.QueueConfig{"bench_sleep": {MaxWorkers: 64, FetchCooldown: cooldown, FetchPollInterval: poll}},
	})
	if err != nil {
		return 0, err
	}
	start, stop, err := startAndAwait(ctx, client, n, 2*time.Minute, func(*river.Event) bool { return true }, river.EventKindJobCompleted)
	defer stop()
	if err != nil {
		return 0, fmt.Errorf("riverfetch: %w", err)
	}
	// As in the orders bench: the end is the last completion's commit, not
	// River's (batched) report of it.
	var last time.Time
	if err := env.pool.QueryRow(ctx, `
		SELECT max(finalized_at) FROM river_job WHERE kind = 'bench_sleep' AND finalized_at > $1`, start).Scan(&last); err != nil {
		return 0, err
	}
	// The n jobs are all finished: one call deletes them.
	if _, err := inserter.JobDeleteMany(ctx, river.NewJobDeleteManyParams().Kinds(sleepArgs{}.Kind()).First(n)); err != nil {
		return 0, err
	}
	return n / last.Sub(start).Seconds(), nil
}
