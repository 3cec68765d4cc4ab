package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func init() { register("scale", benchScale) }

// childWorkerEnv, set to a database URL, makes the bench binary a worker
// process of `bench scale` instead (see runChildWorker).
const childWorkerEnv = "TIDEMARK_BENCH_CHILD_WORKER"

// benchScale measures how the therapy run's cost grows with the work:
//   - users/s at BENCH_SCALE_USERS users (default 10,000, 100,000 and
//     1,000,000, BENCH_SCALE_PERFORMS sessions each, default 30);
//   - at BENCH_SCALE_REF_USERS users (default 100,000, one of the sizes),
//     two worker processes against one, each a client as the in-process
//     run's; the largest size's users/s is compared with this size's;
//   - in a database whose tables were never analysed, the run against the
//     same run once they are.
func benchScale(ctx context.Context, e *benchEnv) error {
	sizes, err := envInts("BENCH_SCALE_USERS", []int{10_000, 100_000, 1_000_000})
	if err != nil {
		return err
	}
	performs := envInt("BENCH_SCALE_PERFORMS", 30)
	refUsers := envInt("BENCH_SCALE_REF_USERS", 100_000)
	if !slices.Contains(sizes, refUsers) {
		return fmt.Errorf("BENCH_SCALE_REF_USERS %d is not one of BENCH_SCALE_USERS %v", refUsers, sizes)
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i] <= sizes[i-1] {
			return fmt.Errorf("BENCH_SCALE_USERS must grow: %d after %d", sizes[i], sizes[i-1])
		}
	}
	freshUsers := envInt("BENCH_SCALE_FRESH_USERS", 30_000)
	workers := e.therapyWorkers()

	if err := scaleStatistics(ctx, e, freshUsers, workers); err != nil {
		return err
	}

	var refRate, lastRate float64
	generated := 0
	for _, n := range sizes {
		t0 := time.Now()
		if _, _, err := e.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: int64(generated) + 1,
			Users: n - generated, PerformsPerUser: performs, Year: 2026, Month: 11}, e.cfg.TZ); err != nil {
			return err
		}
		generated = n
		if err := resetRuns(ctx, e); err != nil {
			return err
		}
		fmt.Printf("data: %d users x %d sessions (%s to add); VACUUM ANALYZE as autovacuum would (it is off here)\n",
			n, performs, time.Since(t0).Round(time.Second))
		d, err := benchDaily(ctx, e, "2026-12-01", n, workers)
		if err != nil {
			return err
		}
		if err := checkTherapyTotals(ctx, e, n*performs); err != nil {
			return err
		}
		lastRate = rate(n, d)
		fmt.Printf("therapy run, %8d users, one process  %6.0f users/s (%s)\n", n, rate(n, d), d.Round(time.Millisecond))

		if n == refUsers {
			refRate = lastRate
			if err := scaleProcesses(ctx, e, n, performs); err != nil {
				return err
			}
		}
	}
	if largest := sizes[len(sizes)-1]; largest != refUsers {
		fmt.Printf("ratio: users/s at %d / at %d = %.2f (target at least 0.8)\n", largest, refUsers, lastRate/refRate)
	}
	return nil
}

// resetRuns empties the job tables, the run identities and the statistics
// between runs (TRUNCATE: a DELETE would archive the jobs), then does what
// autovacuum would have done by the time the next day's run starts.
func resetRuns(ctx context.Context, e *benchEnv) error {
	if _, err := e.pool.Exec(ctx, `TRUNCATE river_job, job_archive, completed_run, therapy_statistics`); err != nil {
		return err
	}
	_, err := e.pool.Exec(ctx, `VACUUM ANALYZE therapy_user, therapy_perform, river_job, therapy_statistics`)
	return err
}

// scaleProcesses runs the therapy run of users with one worker process, then
// with two (each this binary as a child with a client configured as the
// in-process run's, benchClientConfig, and a pool of its own), and prints
// jobs/s of each.
func scaleProcesses(ctx context.Context, e *benchEnv, users, performs int) error {
	var rates [3]float64
	for procs := 1; procs <= 2; procs++ {
		if err := resetRuns(ctx, e); err != nil {
			return err
		}
		d, err := runWithProcesses(ctx, e, procs, "2026-12-01", users)
		if err != nil {
			return fmt.Errorf("%d worker process(es): %w", procs, err)
		}
		if err := checkTherapyTotals(ctx, e, users*performs); err != nil {
			return err
		}
		rates[procs] = rate(users+1, d)
	}
	for procs := 1; procs <= 2; procs++ {
		fmt.Printf("therapy run, %8d users, %d worker process(es) %6.0f jobs/s\n", users, procs, rates[procs])
	}
	fmt.Printf("ratio: two worker processes / one = %.2f jobs/s (two cores shared with Postgres: no loss expected, not 2x)\n",
		rates[2]/rates[1])
	return nil
}

// runWithProcesses starts procs worker processes, waits until each has
// started its client, inserts date's fan-out job, and returns the time from
// the insert until no job is outstanding. The processes stop gracefully
// after; one that does not is an error.
func runWithProcesses(ctx context.Context, e *benchEnv, procs int, date string, users int) (elapsed time.Duration, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	var children []*exec.Cmd
	var stdins []io.WriteCloser
	defer func() {
		for i, c := range children {
			_ = stdins[i].Close() // the child stops its client and exits
			if werr := c.Wait(); werr != nil {
				err = errors.Join(err, fmt.Errorf("worker process %d: %w", i+1, werr))
			}
		}
	}()
	for range procs {
		c := exec.CommandContext(ctx, self)
		c.Env = append(os.Environ(), childWorkerEnv+"="+e.dbURL)
		c.Stderr = os.Stderr
		in, err := c.StdinPipe()
		if err != nil {
			return 0, err
		}
		out, err := c.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := c.Start(); err != nil {
			return 0, err
		}
		children, stdins = append(children, c), append(stdins, in)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			return 0, fmt.Errorf("worker process did not start: %q %v", line, err)
		}
	}
	client, err := jobs.NewClient(e.pool, jobs.ClientConfig{}, e.deps()) // insert-only
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := client.Insert(ctx, jobs.TherapyDailyArgs{BusinessDate: date}, nil); err != nil {
		return 0, err
	}
	if err := waitIdle(ctx, e); err != nil {
		return 0, err
	}
	elapsed = time.Since(start)
	return elapsed, reportDaily(ctx, e, date, users)
}

// runChildWorker is a worker process of scaleProcesses: a client configured
// as benchClientConfig on dbURL, with a pool as the bench's own, started,
// "ready" on stdout, stopped gracefully when stdin closes.
func runChildWorker(ctx context.Context, dbURL string) error {
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	pc.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	e := &benchEnv{cfg: cfg, dbURL: dbURL, pool: pool, store: store.New(pool), logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	client, err := jobs.NewClient(pool, benchClientConfig(e, cfg.Queues[jobs.QueueTherapy]), e.deps())
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return client.Stop(stopCtx)
}

// scaleStatistics runs the therapy run of users on a database whose tables
// were never analysed (as on a new deployment's first big run, or where
// autovacuum has not caught up), then, once VACUUM ANALYZE has run, another
// run of the same month; tidemark analyses the tables it grows itself,
// so the two should be close.
func scaleStatistics(ctx context.Context, e *benchEnv, users, workers int) error {
	fresh, err := newBenchEnv(ctx, "scale_fresh")
	if err != nil {
		return err
	}
	defer fresh.close(ctx)
	// Whatever the server's autovacuum does, nothing analyses these tables
	// but tidemark itself until the bench does.
	if _, err := fresh.pool.Exec(ctx, `
		ALTER TABLE therapy_user SET (autovacuum_enabled = false);
		ALTER TABLE therapy_perform SET (autovacuum_enabled = false);
		ALTER TABLE river_job SET (autovacuum_enabled = false)`); err != nil {
		return err
	}
	if _, _, err := fresh.store.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: users,
		PerformsPerUser: 30, Year: 2026, Month: 11}, fresh.cfg.TZ); err != nil {
		return err
	}
	var analysed int
	if err := fresh.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_user_tables
		WHERE relname IN ('river_job', 'therapy_perform', 'therapy_user')
		  AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)`).Scan(&analysed); err != nil {
		return err
	}
	if analysed != 0 {
		return fmt.Errorf("statistics: %d of the tables were analysed before the first run", analysed)
	}
	never, err := benchDaily(ctx, fresh, "2026-12-01", users, workers)
	if err != nil {
		return err
	}
	fmt.Printf("therapy run, %d users, tables never analysed    %6.0f users/s (%s)\n", users, rate(users, never), never.Round(time.Millisecond))
	if _, err := fresh.pool.Exec(ctx, `TRUNCATE therapy_statistics`); err != nil {
		return err
	}
	if _, err := fresh.pool.Exec(ctx, `VACUUM ANALYZE therapy_user, therapy_perform, river_job, therapy_statistics`); err != nil {
		return err
	}
	// Another run of November from another date, whose stats jobs are no
	// duplicates of the first run's, with those finished in river_job (a run
	// not on the 1st also enqueues the 1st's: October's, no users, refused
	// or done in a moment).
	after, err := benchDaily(ctx, fresh, "2026-11-30", users, workers)
	if err != nil {
		return err
	}
	fmt.Printf("therapy run, %d users, after VACUUM ANALYZE     %6.0f users/s (%s; %d finished jobs in river_job)\n",
		users, rate(users, after), after.Round(time.Millisecond), users+1)
	fmt.Printf("ratio: never analysed / analysed = %.2f in users/s (target at least 0.8: within 20%%)\n",
		after.Seconds()/never.Seconds())
	return nil
}

// envInts reads a comma-separated list of positive integers, def when unset.
func envInts(name string, def []int) ([]int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}
