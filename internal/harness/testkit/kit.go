// Package testkit is what every tidemark test needs: a database of its own at
// the current schema (DatabaseURL, Pool), a logger that writes to the test's
// log (Logger), the business time zone the batches run in (TZ), and waits on a
// condition with a deadline instead of sleeps (WaitFor, Poll), and a rivertest
// worker with a transaction to work in (NewWorker), and a River client started
// for the test's length (StartClient), and River's cleaner run now
// (RunCleaner).
//
// Databases are cloned from a template migrated once per schema version, on
// the server named by TEST_DATABASE_URL, else DATABASE_URL, else
// 127.0.0.1:5432 (scripts/services.sh exports DATABASE_URL for `make test`).
// The package imports no tidemark package but migrations, so any package's
// internal tests may use it.
package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // TZ never depends on the machine's zoneinfo

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
)

// Logger returns a logger that writes each record to tb.Log, so it is shown
// with the test that logged it (on failure, or with -v). Records logged after
// the test and its cleanups have finished — by a goroutine that outlived it —
// are dropped, since the testing package panics on those.
func Logger(tb testing.TB) *slog.Logger {
	tb.Helper()
	w := &testWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(string(trimNewline(p)))
	}
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		return p[:n-1]
	}
	return p
}

// tz is loaded once; the embedded tzdata makes LoadLocation unable to fail.
var tz = sync.OnceValue(func() *time.Location {
	l, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		panic(fmt.Sprintf("testkit: %v", err))
	}
	return l
})

// TZ is the business time zone the batches use in tests: BATCH_TZ's default,
// Asia/Seoul. Nine hours east of UTC and without daylight saving, it makes a
// date computed in UTC or in the machine's zone show up as the wrong day.
func TZ() *time.Location { return tz() }

// PollInterval is how often WaitFor checks its condition.
const PollInterval = 20 * time.Millisecond

// Poll calls cond at once and then every interval until it reports true, and
// returns nil; or until ctx is done, and returns ctx's error with cond's last
// error. An error from cond counts as "not yet": a condition may fail while a
// service it asks is down.
func Poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", context.Cause(ctx), last)
			}
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// WaitFor waits until cond holds (see Poll) and fails the test, naming what
// it waited for and cond's last error, if it does not within timeout. It must
// be called from the test's goroutine.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), timeout)
	defer cancel()
	if err := Poll(ctx, PollInterval, cond); err != nil {
		tb.Fatalf("testkit: %s: not within %s: %v", what, timeout, err)
	}
}

// NewWorker returns rivertest's worker for w on pool, logging to the test,
// and a transaction on pool to work its jobs in, rolled back when the test
// ends.
func NewWorker[T river.JobArgs](tb testing.TB, pool *pgxpool.Pool, w river.Worker[T]) (*rivertest.Worker[T, pgx.Tx], pgx.Tx) {
	tb.Helper()
	tx, err := pool.Begin(tb.Context())
	if err != nil {
		tb.Fatalf("testkit: begin: %v", err)
	}
	tb.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return rivertest.NewWorker(tb, riverpgxv5.New(pool), &river.Config{Logger: Logger(tb)}, w), tx
}

// StartClient starts client and stops it when the test ends, giving its
// running jobs 10 s.
func StartClient[TTx any](tb testing.TB, client *river.Client[TTx]) {
	tb.Helper()
	if err := client.Start(context.Background()); err != nil {
		tb.Fatalf("testkit: start the River client: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
}

// RunCleaner deletes every finished job from river_job, as River's cleaner
// does once a job is past JOB_RETENTION, through River's JobDeleteMany, so a
// test sees what a job's history looks like after the cleaner took it. It
// returns how many jobs it deleted.
func RunCleaner(tb testing.TB, pool *pgxpool.Pool) int64 {
	tb.Helper()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		tb.Fatalf("testkit: a River client for the cleaner: %v", err)
	}
	const batch = 10_000
	params := river.NewJobDeleteManyParams().First(batch).
		States(rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded)
	var deleted int64
	for {
		res, err := client.JobDeleteMany(context.Background(), params)
		if err != nil {
			tb.Fatalf("testkit: delete the finished jobs: %v", err)
		}
		deleted += int64(len(res.Jobs))
		if len(res.Jobs) < batch {
			return deleted
		}
	}
}
