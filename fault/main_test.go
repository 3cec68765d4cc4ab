package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testbin"
	"github.com/tidemark/tidemark/internal/testpg"
)

// A row of the table `make chaos` prints: one fault injected into one batch.
type outcome struct {
	Fault, Batch string
	Rep          int
	OK           bool
	Lost, Dups   int64
	// Ready is how long after the server came back the workers' /readyz
	// answered 200 again; Done how long until the batch had finished.
	Ready, Done time.Duration
	Note        string
}

var (
	outcomesMu sync.Mutex
	outcomes   []outcome
)

func record(t *testing.T, o outcome) {
	t.Helper()
	o.OK = !t.Failed()
	outcomesMu.Lock()
	outcomes = append(outcomes, o)
	outcomesMu.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if len(outcomes) > 0 {
		printTable()
	}
	os.Exit(code)
}

func printTable() {
	sort.SliceStable(outcomes, func(i, j int) bool {
		a, b := outcomes[i], outcomes[j]
		if a.Fault != b.Fault {
			return a.Fault < b.Fault
		}
		if a.Batch != b.Batch {
			return a.Batch < b.Batch
		}
		return a.Rep < b.Rep
	})
	fmt.Println()
	fmt.Println("| fault | batch | run | result | lost | duplicates | ready after | done after | crashed at |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, o := range outcomes {
		res := "pass"
		if !o.OK {
			res = "FAIL"
		}
		fmt.Printf("| %s | %s | %d | %s | %d | %d | %s | %s | %s |\n", o.Fault, o.Batch, o.Rep, res, o.Lost, o.Dups,
			o.Ready.Round(10*time.Millisecond), o.Done.Round(10*time.Millisecond), o.Note)
	}
}

// reps is how many times each fault is injected into each batch: 1 in
// `make test`, CHAOS_REPS in `make chaos`. Repetition i crashes at moment
// moment(i) of the run, so the crashes spread over it.
func reps(t *testing.T) int {
	v := os.Getenv("CHAOS_REPS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "CHAOS_REPS")
	require.Positive(t, n, "CHAOS_REPS")
	return n
}

// moment is the fraction of a run at which repetition rep of n crashes:
// n = 1 crashes half way; more spread from early to late.
func moment(rep, n int) float64 {
	return float64(rep+1) / float64(n+1)
}

// bundle is a private Postgres with tidemark's schema, a pool on it for the
// test's own checks, and the real binaries running against it.
type bundle struct {
	ctx  context.Context
	pg   *testpg.Server
	pool *pgxpool.Pool
	env  []string
}

func setup(t *testing.T, env ...string) *bundle {
	t.Helper()
	pg := testpg.Start(t)
	ctx := context.Background()
	pc, err := pgxpool.ParseConfig(pg.URL)
	require.NoError(t, err)
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	base := []string{"DATABASE_URL=" + pg.URL, "BATCH_TZ=Asia/Seoul", "PERIODIC_JOBS=false", "ADMIN_TOKEN=fault-token"}
	return &bundle{ctx: ctx, pg: pg, pool: pool, env: append(base, env...)}
}

// workers starts n worker processes on the bundle's database.
func (b *bundle) workers(t *testing.T, n int, env ...string) []*testbin.Proc {
	t.Helper()
	out := make([]*testbin.Proc, n)
	for i := range out {
		out[i] = testbin.StartWorker(t, append(append([]string{}, b.env...), env...)...)
	}
	return out
}

// enqueue runs the enqueue CLI and requires exit 0.
func (b *bundle) enqueue(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := testbin.Run(t, testbin.Build(t, "enqueue"), b.env, args...)
	require.Equal(t, 0, code, "enqueue %v: %s%s", args, stdout, stderr)
	return stdout
}

// count runs a count query; it fails the test on error (call it only while
// the server is up).
func (b *bundle) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n), sql)
	return n
}

// until polls cond, which may fail while the server is down (an error counts
// as not yet), until it holds or timeout passes.
func until(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crash crash-stops the server once cond holds, checks that every worker's
// /readyz answers 503 while it is down, starts it again and returns when
// every worker's /readyz answers 200, with how long that took after the start.
func (b *bundle) crash(t *testing.T, workers []*testbin.Proc) (ready time.Duration) {
	t.Helper()
	require.NoError(t, b.pg.Crash())
	for _, w := range workers {
		until(t, 10*time.Second, "worker /readyz 503 while Postgres is down", func() (bool, error) {
			code, body := get(w.Addr, "/readyz")
			return code == http.StatusServiceUnavailable && strings.Contains(body, "postgres"), nil
		})
	}
	require.NoError(t, b.pg.Start())
	up := time.Now()
	for _, w := range workers {
		until(t, 30*time.Second, "worker /readyz 200 after Postgres is back", func() (bool, error) {
			code, _ := get(w.Addr, "/readyz")
			return code == http.StatusOK, nil
		})
	}
	return time.Since(up)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func get(addr, path string) (int, string) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}

// waitIdle waits until no job is outstanding (what `enqueue wait` waits for),
// tolerating the server being down meanwhile.
func (b *bundle) waitIdle(t *testing.T, timeout time.Duration) {
	t.Helper()
	until(t, timeout, "all jobs finished", func() (bool, error) {
		var busy bool
		err := b.pool.QueryRow(b.ctx, `
			SELECT EXISTS (SELECT 1 FROM river_job WHERE state IN ('available', 'running', 'pending', 'retryable', 'scheduled'))`).Scan(&busy)
		return !busy, err
	})
}

// requireNoFailedJobs fails when any job was discarded or cancelled: a fault
// that clears must never leave work given up.
func (b *bundle) requireNoFailedJobs(t *testing.T) {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT id, kind, state::text, errors::text FROM river_job WHERE state IN ('discarded', 'cancelled') LIMIT 5`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, state, errs string
		require.NoError(t, rows.Scan(&id, &kind, &state, &errs))
		t.Errorf("job %d (%s) %s: %s", id, kind, state, errs)
	}
	require.NoError(t, rows.Err())
}

// text runs a query returning one text value (server up).
func (b *bundle) text(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&s), sql)
	return s
}
