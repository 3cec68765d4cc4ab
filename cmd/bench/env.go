package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/migrations"
	"github.com/tidemark/tidemark/store"
)

// benchEnv is a fresh, migrated database for one benchmark.
type benchEnv struct {
	cfg    config.Config
	dbURL  string
	dbName string
	pool   *pgxpool.Pool
	store  *store.Store
	logger *slog.Logger
	// pollOnly: the pool goes through a transaction pooler, and River
	// clients run as the worker's do there (ClientConfig.PollOnly).
	pollOnly bool
}

func newBenchEnv(ctx context.Context, name string) (*benchEnv, error) {
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	e := &benchEnv{cfg: cfg, dbName: "tm_bench_" + name,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	admin, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+e.dbName+" WITH (FORCE)"); err != nil {
		return nil, err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+e.dbName); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.DatabaseURL)
	u.Path = "/" + e.dbName
	e.dbURL = u.String()
	if err := migrations.Up(e.dbURL); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(e.dbURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 40
	if e.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	e.store = store.New(e.pool)
	return e, nil
}

func (e *benchEnv) close(ctx context.Context) {
	e.pool.Close()
	if admin, err := pgx.Connect(ctx, e.cfg.DatabaseURL); err == nil {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+e.dbName+" WITH (FORCE)")
		admin.Close(ctx)
	}
}

// deps returns worker dependencies on the benchmark's database.
func (e *benchEnv) deps() jobs.Deps {
	return jobs.Deps{Store: e.store, TZ: e.cfg.TZ, Logger: e.logger}
}

// rate formats n per elapsed as "N/s".
func rate(n int, elapsed time.Duration) float64 { return float64(n) / elapsed.Seconds() }

// timeUntilIdle starts client, runs enqueue, waits until no job is
// outstanding, stops the client, and returns the time from start to idle.
func (e *benchEnv) timeUntilIdle(ctx context.Context, client *jobs.Client, enqueue func() error) (time.Duration, error) {
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	err := enqueue()
	if err == nil {
		err = waitIdle(ctx, e)
	}
	elapsed := time.Since(start)
	if stopErr := client.Stop(ctx); err == nil {
		err = stopErr
	}
	return elapsed, err
}

// startAndAwait subscribes to kinds, starts client, and returns once ended
// has said true for n of its events (or after timeout). It returns when the
// client was started and a stop function (a 30 s grace), always to be called.
// Events cost the database nothing, unlike polling it during a measurement.
func startAndAwait(ctx context.Context, client *jobs.Client, n int, timeout time.Duration, ended func(*river.Event) bool, kinds ...river.EventKind) (time.Time, func(), error) {
	events, cancelSub := client.Subscribe(kinds...)
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		cancelSub()
		return start, func() {}, err
	}
	stop := func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
		cancelSub()
	}
	deadline := time.After(timeout)
	for done := 0; done < n; {
		select {
		case ev := <-events:
			if ended(ev) {
				done++
			}
		case <-deadline:
			return start, stop, fmt.Errorf("%d of %d jobs ended within %s", done, n, timeout)
		case <-ctx.Done():
			return start, stop, ctx.Err()
		}
	}
	return start, stop, nil
}

// waitIdle polls until no job is outstanding.
func waitIdle(ctx context.Context, e *benchEnv) error {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		busy, err := e.store.AnyOutstandingJobs(ctx)
		if err != nil {
			return err
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("jobs still outstanding after 30 minutes")
}

// therapyWorkers is the therapy queue's workers of TIDEMARK_QUEUES, or its
// default when the set leaves the therapy queue out.
func (e *benchEnv) therapyWorkers() int {
	return cmp.Or(e.cfg.Queues[jobs.QueueTherapy], config.DefaultQueues()[jobs.QueueTherapy])
}
