package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/dbpool"
	"github.com/tidemark/tidemark/internal/harness/testpgbouncer"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/store"
)

func init() { register("pooler", benchPooler) }

// benchPooler runs the therapy run (b) and the orders batch on one database
// three ways: over a direct pool as the worker builds it without a pooler;
// over a direct pool built as for DATABASE_POOLER=transaction (pgx's exec
// mode, River poll-only), which is the pooled client's own cost; and
// through a private PgBouncer in transaction mode with that same pool. The
// pooler opens BENCH_POOLER_POOL_SIZE server connections (default_pool_size),
// by default as many as the pool has client connections, so that the ratio
// is the pooler's own cost; fewer make the run wait for server connections
// (design/pooler.md). It prints them side by side with the ratio
// pgbouncer / direct.
func benchPooler(ctx context.Context, e *benchEnv) error {
	users := envInt("BENCH_POOLER_USERS", 20_000)
	performs := envInt("BENCH_THERAPY_PERFORMS", 30)
	orders := envInt("BENCH_POOLER_ORDERS", benchOrderRequests)
	poolSize := envInt("BENCH_POOLER_POOL_SIZE", int(e.pool.Config().MaxConns))
	workers := e.therapyWorkers()

	dir, err := os.MkdirTemp("", "tidemark-bench-pgbouncer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bouncer, err := testpgbouncer.Launch(e.dbURL, dir, poolSize)
	if err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	defer bouncer.Stop()
	if err := testpgbouncer.ApplySession(e.dbURL, config.DefaultWorkerSession); err != nil {
		return fmt.Errorf("pgbouncer: database settings: %w", err)
	}
	pooledEnv := func(url string) (*benchEnv, error) {
		pc, err := dbpool.Config(url, config.PoolerTransaction, config.DefaultWorkerSession)
		if err != nil {
			return nil, err
		}
		pc.MaxConns = e.pool.Config().MaxConns
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, err
		}
		if err := dbpool.CheckSession(ctx, pool, config.DefaultWorkerSession); err != nil {
			pool.Close()
			return nil, err
		}
		env := *e
		env.pool, env.store, env.pollOnly = pool, store.New(pool), true
		return &env, nil
	}
	execEnv, err := pooledEnv(e.dbURL)
	if err != nil {
		return err
	}
	defer execEnv.pool.Close()
	bouncerEnv, err := pooledEnv(bouncer.URL(e.dbURL))
	if err != nil {
		return err
	}
	defer bouncerEnv.pool.Close()
	sides := []*benchEnv{e, execEnv, bouncerEnv}
	fmt.Printf("pgbouncer %s, pool_mode = transaction, default_pool_size %d; each side's pool %d connections; load average %s\n",
		bouncer.Addr(), poolSize, e.pool.Config().MaxConns, loadAverage())

	t0 := time.Now()
	if _, _, err := e.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: users, PerformsPerUser: performs, Year: 2026, Month: 11}, e.cfg.TZ); err != nil {
		return err
	}
	fmt.Printf("data: %d users x %d performs, generated in %s; %d workers on the therapy queue\n",
		users, performs, time.Since(t0).Round(time.Millisecond), workers)

	var therapy, ordersRate [3]float64
	for i, env := range sides {
		if err := resetRuns(ctx, e); err != nil {
			return err
		}
		fmt.Printf("  %s:\n", side(i))
		d, err := benchDaily(ctx, env, "2026-12-01", users, workers)
		if err != nil {
			return fmt.Errorf("therapy run, %s: %w", side(i), err)
		}
		if err := checkTherapyTotals(ctx, e, users*performs); err != nil {
			return err
		}
		therapy[i] = rate(users, d)
	}

	tpURL, tpPID, stop, err := startBenchThirdParty(ctx, e.dbURL, "--latency", benchOrderLatency.String())
	if err != nil {
		return err
	}
	defer stop()
	for i, env := range sides {
		deps := env.deps()
		deps.OrderAPI = orderapi.New(tpURL, 10*time.Second, benchOrderWorkers)
		run, err := runOrderBatch(ctx, env, deps, tpURL, tpPID, fmt.Sprintf("2025-%02d", 5+i), orders)
		if err != nil {
			return fmt.Errorf("orders, %s: %w", side(i), err)
		}
		ordersRate[i] = rate(run.calls, run.elapsed)
	}

	fmt.Printf("%-44s %8s %12s %10s %6s\n", "", "direct", "direct exec", "pgbouncer", "ratio")
	row := func(name string, r [3]float64) {
		fmt.Printf("%-44s %8.0f %12.0f %10.0f %6.2f\n", name, r[0], r[1], r[2], r[2]/r[0])
	}
	row(fmt.Sprintf("(b) therapy run, %d users, users/s", users), therapy)
	row(fmt.Sprintf("orders, %d requests, %s latency, calls/s", orders, benchOrderLatency), ordersRate)
	fmt.Printf("ratio = pgbouncer / direct, target at least 0.8; direct exec = the pooled client's settings without the pooler\n")
	return nil
}

func side(i int) string {
	return [3]string{"direct", "direct, exec mode and poll-only", "through pgbouncer"}[i]
}
