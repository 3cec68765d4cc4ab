package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func init() { register("couponrush", benchCouponRush) }

// The rush a settlement is started in: every request wins a seat, so each
// one inserts a persist job; the settlement is enqueued once half of them
// were answered, when the persist jobs' backlog is building.
const (
	rushRequests   = 20_000
	rushLedgerRows = 30_000 // 3,000 of them due on rushRunDate
	rushRunDate    = "2026-11-20"
	rushRounds     = 3
	rushWarmup     = 1_000
	rushTimeout    = 5 * time.Minute
)

// rushLayout is how a worker process splits its queues.
type rushLayout struct {
	name       string
	queues     map[string]int
	middleware []rivertype.Middleware
}

// rushRun is what one rush did to the settlement started in it.
type rushRun struct {
	rush loadResult
	// startDelay is the settlement job's attempted_at - created_at; run is
	// its finalized_at - attempted_at.
	startDelay, run time.Duration
	// waiting is how many persist jobs were waiting for a worker when the
	// settlement was inserted; overtaken, how many of them it started before.
	waiting, overtaken int
	// drained is from the rush's first request to its last persist job
	// finished.
	drained time.Duration
	// The worker pool's acquires during the rush, and how many of them
	// found no idle connection and waited how long in all.
	acquires, emptyAcquires int64
	emptyWait               time.Duration
}

// benchCouponRush runs the worker as cmd/worker does (one pool of
// DB_MAX_CONNS for the River client, its workers and the HTTP API; the
// queues and worker counts of TIDEMARK_QUEUES; FETCH_COOLDOWN), sends a rush
// of rushRequests accepted issue requests to its endpoint from 64 keep-alive
// clients, and enqueues a point settlement (from a pool of its own, as
// `enqueue settlement` does) once half were answered. It reports how long
// the settlement waited to start: with the configured layout, and with the
// persist jobs forced back onto the default queue (no member queue), the
// two alternating over rushRounds rounds.
func benchCouponRush(ctx context.Context, env *benchEnv) error {
	gate, closeGate, err := benchGate(env)
	if err != nil {
		return err
	}
	defer closeGate()
	if err := generateLedger(ctx, env.pool, rushLedgerRows, rushRunDate); err != nil {
		return err
	}
	inserter, err := jobs.NewClient(env.pool, jobs.ClientConfig{Retention: env.cfg.Retention, RescueAfter: env.cfg.RescueAfter}, env.deps())
	if err != nil {
		return err
	}
	split := rushLayout{name: "member queue", queues: env.cfg.Queues}
	shared := rushLayout{name: "persist on default", queues: maps.Clone(env.cfg.Queues),
		middleware: []rivertype.Middleware{&persistOnDefault{}}}
	delete(shared.queues, jobs.QueueMember)
	fmt.Printf("settlement during a rush: %d accepted requests from %d keep-alive clients; a point_settlement (%d due rows) enqueued once half were answered\n",
		rushRequests, couponConcurrency, rushLedgerRows/10)
	fmt.Printf("  worker: pool of %d (DB_MAX_CONNS), FETCH_COOLDOWN %s; %s: %s; %s: %s\n", env.cfg.DBMaxConns, env.cfg.FetchCooldown,
		split.name, formatQueues(split.queues), shared.name, formatQueues(shared.queues))
	runs := map[string][]rushRun{}
	for round := 1; round <= rushRounds; round++ {
		for _, l := range []rushLayout{split, shared} {
			r, err := runRushSettlement(ctx, env, gate, inserter, l)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", l.name, round, err)
			}
			runs[l.name] = append(runs[l.name], r)
			fmt.Printf("  round %d, %-19s settlement started after %8s, before %5d of the %5d persist jobs waiting at its insert; ran %s\n",
				round, l.name+":", r.startDelay.Round(time.Millisecond), r.overtaken, r.waiting, r.run.Round(time.Millisecond))
			fmt.Printf("  %28s rush %4.0f req/s, its persist jobs all done %s after it began; pool: %d of %d acquires waited, %s in all\n",
				"", r.rush.rps(), r.drained.Round(100*time.Millisecond), r.emptyAcquires, r.acquires, r.emptyWait.Round(time.Millisecond))
		}
	}
	med := func(name string) rushRun {
		rs := slices.Clone(runs[name])
		slices.SortFunc(rs, func(a, b rushRun) int { return cmp.Compare(a.startDelay, b.startDelay) })
		return rs[len(rs)/2]
	}
	a, b := med(split.name), med(shared.name)
	fmt.Printf("  settlement start delay, median of %d: %s with the member queue (that run's pool: %d of %d acquires waited, %s in all), %s with the persist jobs on default (%.0fx)\n",
		rushRounds, a.startDelay.Round(time.Millisecond), a.emptyAcquires, a.acquires, a.emptyWait.Round(time.Millisecond),
		b.startDelay.Round(time.Millisecond), b.startDelay.Seconds()/a.startDelay.Seconds())
	return nil
}

// persistOnDefault inserts coupon_issue_persist jobs in the default queue:
// the layout without a member queue, for contrast.
type persistOnDefault struct{ river.MiddlewareDefaults }

func (*persistOnDefault) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	for _, p := range params {
		if p.Kind == (jobs.CouponIssuePersistArgs{}).Kind() {
			p.Queue = jobs.QueueDefault
		}
	}
	return doInner(ctx)
}

func formatQueues(q map[string]int) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(q)) {
		parts = append(parts, fmt.Sprintf("%s=%d", name, q[name]))
	}
	return strings.Join(parts, ",")
}

// runRushSettlement starts a worker with layout l, warms it with
// rushWarmup requests, then runs one rush with a settlement enqueued
// midway, and waits until the settlement and every persist job finished.
func runRushSettlement(ctx context.Context, env *benchEnv, gate *coupongate.Gate, inserter *jobs.Client, l rushLayout) (rushRun, error) {
	var r rushRun
	if err := resetSettlementRun(ctx, env.pool, rushRunDate); err != nil {
		return r, err
	}
	pc, err := pgxpool.ParseConfig(env.dbURL)
	if err != nil {
		return r, err
	}
	pc.MaxConns = int32(env.cfg.DBMaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	st := store.New(pool)
	deps := jobs.Deps{Store: st, TZ: env.cfg.TZ, Logger: env.logger, Gate: gate, ReconcileGrace: env.cfg.CouponReconcileGrace}
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Queues: l.queues, Retention: env.cfg.Retention,
		RescueAfter: env.cfg.RescueAfter, FetchCooldown: env.cfg.FetchCooldown, Middleware: l.middleware}, deps)
	if err != nil {
		return r, err
	}
	callers, err := benchCallers(env)
	if err != nil {
		return r, err
	}
	api := &httpapi.Server{Store: st, River: client, TZ: env.cfg.TZ, Logger: env.logger, Gate: gate,
		Callers: callers, MemberLimit: coupongate.Limit(env.cfg.Callers.CouponRate)}
	url, stopHTTP, err := serveLoopback(api.Handler())
	if err != nil {
		return r, err
	}
	defer stopHTTP()
	// Room for every event of a run: a subscriber's full channel drops them.
	events, cancelEvents := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: 2 * (rushRequests + rushWarmup),
		Kinds: []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled}})
	defer cancelEvents()
	if err := client.Start(ctx); err != nil {
		return r, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()
	// awaitPersisted waits for n persist jobs and, with settlement, the
	// settlement job to complete; any other end is an error.
	var settlementID int64
	awaitPersisted := func(n int, settlement bool) error {
		deadline := time.After(rushTimeout)
		for n > 0 || settlement {
			select {
			case ev := <-events:
				if ev.Kind != river.EventKindJobCompleted {
					return fmt.Errorf("job %d (%s) ended %s", ev.Job.ID, ev.Job.Kind, ev.Job.State)
				}
				if ev.Job.Kind == (jobs.CouponIssuePersistArgs{}).Kind() {
					n--
				} else if ev.Job.ID == settlementID {
					settlement = false
				}
			case <-deadline:
				return fmt.Errorf("%d persist jobs or the settlement not finished within %s", n, rushTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}

	n := benchScenario.Add(1)
	warm, code := fmt.Sprintf("RUSH-WARM-%d", n), fmt.Sprintf("RUSH-%d", n)
	for _, c := range []string{warm, code} {
		if err := createBenchCoupon(ctx, env, gate, c, rushRequests); err != nil {
			return r, err
		}
	}
	if _, err := loadCoupon(ctx, url, warm, rushWarmup); err != nil {
		return r, err
	}
	if err := awaitPersisted(rushWarmup, false); err != nil {
		return r, fmt.Errorf("warm-up: %w", err)
	}

	enqueueErr := make(chan error, 1)
	before := pool.Stat()
	start := time.Now()
	r.rush, err = loadCouponMidway(ctx, url, code, rushRequests, func() {
		job, err := jobs.EnqueueSettlement(ctx, inserter, env.store, rushRunDate, jobs.SettlementRunOpts{Rerun: true})
		if err == nil {
			settlementID = job.ID
		}
		enqueueErr <- err
	})
	after := pool.Stat()
	if err != nil {
		return r, err
	}
	if got := r.rush.status[202]; got != rushRequests {
		return r, fmt.Errorf("%d of %d requests accepted (by status %v)", got, rushRequests, r.rush.status)
	}
	if err := <-enqueueErr; err != nil {
		return r, fmt.Errorf("enqueue settlement: %w", err)
	}
	if err := awaitPersisted(rushRequests, true); err != nil {
		return r, err
	}
	r.acquires = after.AcquireCount() - before.AcquireCount()
	r.emptyAcquires = after.EmptyAcquireCount() - before.EmptyAcquireCount()
	r.emptyWait = after.EmptyAcquireWaitTime() - before.EmptyAcquireWaitTime()

	// From the jobs' own timestamps, after the fact: nothing is asked of
	// the database during the rush but what the worker asks.
	var lastPersisted time.Time
	var attempt int
	err = env.pool.QueryRow(ctx, `
		WITH s AS (SELECT created_at, attempted_at, finalized_at, attempt FROM river_job WHERE id = $2),
		     p AS (SELECT created_at, attempted_at, finalized_at FROM river_job
		           WHERE kind = 'coupon_issue_persist' AND args @> jsonb_build_object('coupon_code', $1::text))
		SELECT s.attempted_at - s.created_at, s.finalized_at - s.attempted_at,
		       (SELECT count(*) FROM p WHERE p.created_at < s.created_at AND p.attempted_at > s.created_at),
		       (SELECT count(*) FROM p WHERE p.created_at < s.created_at AND p.attempted_at > s.attempted_at),
		       (SELECT max(finalized_at) FROM p), s.attempt
		FROM s`, code, settlementID).Scan(&r.startDelay, &r.run, &r.waiting, &r.overtaken, &lastPersisted, &attempt)
	if err != nil {
		return r, fmt.Errorf("read the settlement and persist jobs: %w", err)
	}
	r.drained = lastPersisted.Sub(start)
	if attempt != 1 {
		return r, fmt.Errorf("settlement job %d took %d attempts: its attempted_at is not its first", settlementID, attempt)
	}
	return r, nil
}
