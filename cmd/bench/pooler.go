package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/dbpool"
	"github.com/tidemark/tidemark/internal/testpgbouncer"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/store"
)

func init() { register("pooler", benchPooler) }

// benchPooler runs the therapy run (b) and the orders batch twice on one
// database, once over a direct pool and once through a private PgBouncer in
// transaction mode (default_pool_size testpgbouncer.PoolSize) with the pool
// a worker builds for DATABASE_POOLER=transaction (exec mode, River
// poll-only), and prints them side by side with the ratio pooled / direct.
func benchPooler(ctx context.Context, e *benchEnv) error {
	users := envInt("BENCH_POOLER_USERS", 20_000)
	performs := envInt("BENCH_THERAPY_PERFORMS", 30)
	orders := envInt("BENCH_POOLER_ORDERS", benchOrderRequests)
	workers := e.therapyWorkers()

	dir, err := os.MkdirTemp("", "tidemark-bench-pgbouncer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bouncer, err := testpgbouncer.Launch(e.dbURL, dir)
	if err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	defer bouncer.Stop()
	if err := testpgbouncer.ApplySession(e.dbURL, config.DefaultWorkerSession); err != nil {
		return fmt.Errorf("pgbouncer: database settings: %w", err)
	}
	pc, err := dbpool.Config(bouncer.URL(e.dbURL), config.PoolerTransaction, config.DefaultWorkerSession)
	if err != nil {
		return err
	}
	pc.MaxConns = e.pool.Config().MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := dbpool.CheckSession(ctx, pool, config.DefaultWorkerSession); err != nil {
		return err
	}
	pooled := *e
	pooled.pool, pooled.store, pooled.pollOnly = pool, store.New(pool), true
	fmt.Printf("pgbouncer %s, pool_mode = transaction, default_pool_size %d; each side's pool %d connections\n",
		bouncer.Addr(), testpgbouncer.PoolSize, pc.MaxConns)

	t0 := time.Now()
	if _, _, err := e.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: users, PerformsPerUser: performs, Year: 2026, Month: 11}, e.cfg.TZ); err != nil {
		return err
	}
	fmt.Printf("data: %d users x %d performs, generated in %s; %d workers on the therapy queue\n",
		users, performs, time.Since(t0).Round(time.Millisecond), workers)

	var therapy [2]float64
	for i, env := range []*benchEnv{e, &pooled} {
		if err := resetRuns(ctx, e); err != nil {
			return err
		}
		d, err := benchDaily(ctx, env, "2026-12-01", users, workers)
		if err != nil {
			return fmt.Errorf("therapy run %s: %w", side(i), err)
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
	var ordersRate [2]float64
	for i, env := range []*benchEnv{e, &pooled} {
		deps := env.deps()
		deps.OrderAPI = orderapi.New(tpURL, 10*time.Second, benchOrderWorkers)
		run, err := runOrderBatch(ctx, env, deps, tpURL, tpPID, fmt.Sprintf("2025-%02d", 5+i), orders)
		if err != nil {
			return fmt.Errorf("orders %s: %w", side(i), err)
		}
		ordersRate[i] = rate(run.calls, run.elapsed)
	}

	fmt.Printf("%-44s %10s %10s %6s\n", "", "direct", "pgbouncer", "ratio")
	fmt.Printf("%-44s %10.0f %10.0f %6.2f\n", fmt.Sprintf("(b) therapy run, %d users, users/s", users), therapy[0], therapy[1], therapy[1]/therapy[0])
	fmt.Printf("%-44s %10.0f %10.0f %6.2f\n", fmt.Sprintf("orders, %d requests, %s latency, calls/s", orders, benchOrderLatency),
		ordersRate[0], ordersRate[1], ordersRate[1]/ordersRate[0])
	fmt.Printf("target: each ratio at least 0.8\n")
	return nil
}

func side(i int) string { return [2]string{"direct", "through pgbouncer"}[i] }
