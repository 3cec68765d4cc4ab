package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func init() { register("therapy", benchTherapy) }

// noopArgs is a job that does nothing: River's own per-job cost.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// benchTherapy measures, on one database: (a) bare River no-op jobs, (b) the
// full therapy_daily fan-out and aggregation, (c) one set-based SQL
// statement, (d) the design tidemark replaces — one loop, a global advisory lock and one
// transaction per user.
func benchTherapy(ctx context.Context, e *benchEnv) error {
	users := envInt("BENCH_THERAPY_USERS", 100_000)
	performs := envInt("BENCH_THERAPY_PERFORMS", 30)
	loopUsers := envInt("BENCH_THERAPY_LOOP_USERS", 20_000)
	workers := e.therapyWorkers()
	const year, month = 2026, 11

	t0 := time.Now()
	if _, _, err := e.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: users, PerformsPerUser: performs, Year: year, Month: month}, e.cfg.TZ); err != nil {
		return err
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE therapy_perform`); err != nil {
		return err
	}
	fmt.Printf("data: %d users x %d performs in %04d-%02d, generated in %s; %d workers on the therapy queue, fetch cooldown %s\n",
		users, performs, year, month, time.Since(t0).Round(time.Millisecond), workers, e.cfg.FetchCooldown)

	// (a) bare River: the same number of no-op jobs, same queue and workers;
	// (a') the same with a unique key, as therapy_stats has: River's own
	// extra cost for unique jobs.
	cpu := startCPUMeter()
	a, err := benchNoop(ctx, e, users, workers, false)
	if err != nil {
		return err
	}
	cpuA := cpu.stop()
	fmt.Printf("(a) river no-op jobs            %8.0f jobs/s  (%d jobs in %s)\n", rate(users, a), users, a.Round(time.Millisecond))
	fmt.Printf("    CPU during (a): %s\n", cpuA)
	cpu = startCPUMeter()
	aUnique, err := benchNoop(ctx, e, users, workers, true)
	if err != nil {
		return err
	}
	cpuAUnique := cpu.stop()
	fmt.Printf("(a') river no-op unique jobs    %8.0f jobs/s  (%d jobs in %s)\n", rate(users, aUnique), users, aUnique.Round(time.Millisecond))
	fmt.Printf("    CPU during (a'): %s\n", cpuAUnique)

	// (b) the real thing: therapy_daily selects every user and fans out.
	cpu = startCPUMeter()
	b, err := benchDaily(ctx, e, "2026-12-01", users, workers)
	if err != nil {
		return err
	}
	fmt.Printf("    CPU during (b): %s\n", cpu.stop())
	fmt.Printf("(b) therapy_daily + therapy_stats %6.0f users/s (%d users in %s)\n", rate(users, b), users, b.Round(time.Millisecond))
	if err := checkTherapyTotals(ctx, e, users*performs); err != nil {
		return err
	}

	// (c) one set-based statement.
	if _, err := e.pool.Exec(ctx, `TRUNCATE therapy_statistics`); err != nil {
		return err
	}
	start := time.Now()
	if _, err := aggregateTherapyMonthSetBased(ctx, e.pool, year, month, e.cfg.TZ); err != nil {
		return err
	}
	c := time.Since(start)
	fmt.Printf("(c) set-based INSERT…SELECT     %8.0f users/s (%s)\n", rate(users, c), c.Round(time.Millisecond))

	// (d) the design tidemark replaces, on the first loopUsers users.
	if _, err := e.pool.Exec(ctx, `TRUNCATE therapy_statistics`); err != nil {
		return err
	}
	d, err := benchSingleLoop(ctx, e, loopUsers, year, month)
	if err != nil {
		return err
	}
	fmt.Printf("(d) single loop + global lock   %8.0f users/s (%d users in %s)\n", rate(loopUsers, d), loopUsers, d.Round(time.Millisecond))

	ra, rb, rc, rd := rate(users, a), rate(users, b), rate(users, c), rate(loopUsers, d)
	fmt.Printf("ratios: b/a = %.2f   b/a' = %.2f   b/c = %.2f   b/d = %.1fx (River's no-op jobs are %.1fx the loop)\n",
		rb/ra, rb/rate(users, aUnique), rb/rc, rb/rd, ra/rd)
	return nil
}

func benchNoop(ctx context.Context, e *benchEnv, n, workers int, unique bool) (time.Duration, error) {
	w := river.NewWorkers()
	river.AddWorker(w, &noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		Logger:        e.logger,
		Queues:        map[string]river.QueueConfig{jobs.QueueTherapy: {MaxWorkers: workers}},
		Workers:       w,
		FetchCooldown: e.cfg.FetchCooldown,
	})
	if err != nil {
		return 0, err
	}
	elapsed, err := e.timeUntilIdle(ctx, client, func() error {
		for i := 0; i < n; i += 5000 {
			params := make([]river.InsertManyParams, 0, 5000)
			for j := i; j < min(i+5000, n); j++ {
				params = append(params, river.InsertManyParams{Args: noopArgs{N: j}, InsertOpts: &river.InsertOpts{
					Queue: jobs.QueueTherapy, UniqueOpts: river.UniqueOpts{ByArgs: unique},
				}})
			}
			if _, err := client.InsertManyFast(ctx, params); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// TRUNCATE, not DELETE: deleted finished jobs would be archived.
	_, err = e.pool.Exec(ctx, `TRUNCATE river_job`)
	return elapsed, err
}

// benchDaily runs the therapy daily run of date (a date whose run aggregates
// November 2026) with one client in this process, from the fan-out
// job's insert until no job is outstanding, and checks every user's job
// succeeded.
func benchDaily(ctx context.Context, e *benchEnv, date string, users, workers int) (time.Duration, error) {
	client, err := jobs.NewClient(e.pool, benchClientConfig(e, workers), e.deps())
	if err != nil {
		return 0, err
	}
	elapsed, err := e.timeUntilIdle(ctx, client, func() error {
		_, err := client.Insert(ctx, jobs.TherapyDailyArgs{BusinessDate: date}, nil)
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := reportDaily(ctx, e, date, users); err != nil {
		return 0, err
	}
	return elapsed, nil
}

// benchClientConfig is the worker's client configuration with workers on the
// therapy queue.
func benchClientConfig(e *benchEnv, workers int) jobs.ClientConfig {
	return jobs.ClientConfig{
		Queues:        map[string]int{jobs.QueueDefault: 2, jobs.QueueTherapy: workers},
		Retention:     e.cfg.Retention,
		RescueAfter:   e.cfg.RescueAfter,
		FetchCooldown: e.cfg.FetchCooldown,
		PollOnly:      e.pollOnly,
	}
}

// reportDaily prints the fan-out's time and the jobs' average run time of
// date's therapy run, and fails unless every one of users succeeded.
func reportDaily(ctx context.Context, e *benchEnv, date string, users int) error {
	dateArgs := fmt.Sprintf(`{"business_date": %q}`, date)
	var done, retried int
	var sample *string
	if err := e.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE state = 'completed' AND kind = 'therapy_stats'),
		       count(*) FILTER (WHERE errors IS NOT NULL),
		       min(errors[1]->>'error')
		FROM river_job WHERE args @> $1`, dateArgs).Scan(&done, &retried, &sample); err != nil {
		return err
	}
	var fanout, avgRun float64
	if err := e.pool.QueryRow(ctx, `
		SELECT extract(epoch FROM max(finalized_at - attempted_at) FILTER (WHERE kind = 'therapy_daily')),
		       extract(epoch FROM avg(finalized_at - attempted_at) FILTER (WHERE kind = 'therapy_stats'))
		FROM river_job WHERE args @> $1`, dateArgs).Scan(&fanout, &avgRun); err != nil {
		return err
	}
	fmt.Printf("    fan-out job %.2fs; therapy_stats fetch-to-finalised %.1f ms on average\n", fanout, avgRun*1000)
	if retried > 0 {
		fmt.Printf("    %d job(s) needed a retry; first error: %s\n", retried, *sample)
	}
	if done != users {
		return fmt.Errorf("therapy run %s: %d of %d therapy_stats jobs succeeded", date, done, users)
	}
	return nil
}

// checkTherapyTotals verifies (b) computed what the data holds.
func checkTherapyTotals(ctx context.Context, e *benchEnv, want int) error {
	var got int
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(perform_count), 0) FROM therapy_statistics`).Scan(&got); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("(b) aggregated %d performs, want %d", got, want)
	}
	return nil
}

// benchSingleLoop is the replaced design's aggregateDaily: for each user in turn, take the
// global named lock, open a transaction, read the user's rows, compute in the
// application, upsert, commit, release the lock.
func benchSingleLoop(ctx context.Context, e *benchEnv, users, year, month int) (time.Duration, error) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	from, to := calendar.MonthBounds(year, month, e.cfg.TZ)
	start := time.Now()
	for u := int64(1); u <= int64(users); u++ {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('batch-lock'))`); err != nil {
			return 0, err
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT performed_at, duration_seconds, completed FROM therapy_perform
				WHERE therapy_user_id = $1 AND performed_at >= $2 AND performed_at < $3`, u, from, to)
			if err != nil {
				return err
			}
			var n, completed, total int64
			var first, last time.Time
			days := map[string]bool{}
			for rows.Next() {
				var at time.Time
				var secs int64
				var ok bool
				if err := rows.Scan(&at, &secs, &ok); err != nil {
					return err
				}
				n++
				total += secs
				if ok {
					completed++
				}
				if first.IsZero() || at.Before(first) {
					first = at
				}
				if at.After(last) {
					last = at
				}
				days[at.In(e.cfg.TZ).Format(time.DateOnly)] = true
			}
			if err := rows.Err(); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO therapy_statistics (therapy_user_id, year, month, perform_count, completed_count,
				    total_duration_seconds, active_days, first_performed_at, last_performed_at, aggregated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
				ON CONFLICT (therapy_user_id, year, month) DO UPDATE SET
				    perform_count = EXCLUDED.perform_count, completed_count = EXCLUDED.completed_count,
				    total_duration_seconds = EXCLUDED.total_duration_seconds, active_days = EXCLUDED.active_days,
				    first_performed_at = EXCLUDED.first_performed_at, last_performed_at = EXCLUDED.last_performed_at,
				    aggregated_at = EXCLUDED.aggregated_at`,
				u, year, month, n, completed, total, len(days), first, last)
			return err
		})
		if _, uerr := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('batch-lock'))`); uerr != nil && err == nil {
			err = uerr
		}
		if err != nil {
			return 0, fmt.Errorf("single loop user %d: %w", u, err)
		}
	}
	return time.Since(start), nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
