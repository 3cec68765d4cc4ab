package fault_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testpg"
	"github.com/tidemark/tidemark/internal/harness/testpgbouncer"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// A row of the table the suite prints: one fault injected into one batch.
type outcome struct {
	Fault, Batch string
	Rep          int
	OK           bool
	Lost, Dups   int64
	// Ready is how long after the fault cleared the workers answered again
	// (/readyz 200, or a coupon request reaching Redis); Done how long until
	// the batch had finished.
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
	printRuns()
	printMatrix()
}

// printMatrix prints one row per fault and one column per batch: runs
// passed of runs, and the longest time from the fault to the batch's end;
// then the fault's lost and duplicated work over all its runs, and the
// longest time the workers took to answer again.
func printMatrix() {
	type cell struct {
		runs, passed int
		done         time.Duration
	}
	type row struct {
		cells      map[string]*cell
		lost, dups int64
		ready      time.Duration
	}
	var faultOrder, batchOrder []string
	rows := map[string]*row{}
	seenBatch := map[string]bool{}
	for _, b := range allBatches {
		seenBatch[b.name] = true
		batchOrder = append(batchOrder, b.name)
	}
	for _, o := range outcomes {
		r := rows[o.Fault]
		if r == nil {
			r = &row{cells: map[string]*cell{}}
			rows[o.Fault] = r
			faultOrder = append(faultOrder, o.Fault)
		}
		if !seenBatch[o.Batch] {
			seenBatch[o.Batch] = true
			batchOrder = append(batchOrder, o.Batch)
		}
		c := r.cells[o.Batch]
		if c == nil {
			c = &cell{}
			r.cells[o.Batch] = c
		}
		c.runs++
		if o.OK {
			c.passed++
		}
		c.done = max(c.done, o.Done)
		r.lost += o.Lost
		r.dups += o.Dups
		r.ready = max(r.ready, o.Ready)
	}
	fmt.Println()
	fmt.Printf("| fault | %s | lost | duplicates | ready after |\n", strings.Join(batchOrder, " | "))
	fmt.Printf("| --- |%s --- | --- | --- |\n", strings.Repeat(" --- |", len(batchOrder)))
	for _, fl := range faultOrder {
		r := rows[fl]
		cells := make([]string, len(batchOrder))
		for i, b := range batchOrder {
			if c := r.cells[b]; c != nil {
				cells[i] = fmt.Sprintf("%d/%d, %s", c.passed, c.runs, c.done.Round(100*time.Millisecond))
			} else {
				cells[i] = "–"
			}
		}
		fmt.Printf("| %s | %s | %d | %d | %s |\n", fl, strings.Join(cells, " | "), r.lost, r.dups, r.ready.Round(10*time.Millisecond))
	}
}

// printRuns prints one row per run.
func printRuns() {
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
	fmt.Println("| fault | batch | run | result | lost | duplicates | ready after | done after | fault at |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, o := range outcomes {
		res := "pass"
		if !o.OK {
			res = "FAIL"
		}
		fmt.Printf("| %s | %s | %d | %s | %d | %d | %s | %s | %s |\n", o.Fault, o.Batch, o.Rep+1, res, o.Lost, o.Dups,
			o.Ready.Round(10*time.Millisecond), o.Done.Round(10*time.Millisecond), o.Note)
	}
}

// chaos reports whether the whole suite runs (`make chaos`, CHAOS_REPS set)
// rather than its fast cases (`make test`).
func chaos() bool { return os.Getenv("CHAOS_REPS") != "" }

// reps is how many times each case runs: 1 in `make test`, CHAOS_REPS in
// `make chaos`. Repetition i injects its fault at moment(i, n) of the run,
// so the faults spread over it.
func reps(t *testing.T) int {
	if !chaos() {
		return 1
	}
	n, err := strconv.Atoi(os.Getenv("CHAOS_REPS"))
	require.NoError(t, err, "CHAOS_REPS")
	require.Positive(t, n, "CHAOS_REPS")
	return n
}

// moment is the fraction of a run at which repetition rep of n injects its
// fault: half way for n = 1, spread from early to late for more.
func moment(rep, n int) float64 {
	return float64(rep+1) / float64(n+1)
}

// fixture is one case's world: a private Postgres with tidemark's schema (and,
// where the batch needs them, a private Redis and the simulated partner), a
// proxy in front of each, the worker processes behind the proxies, and a pool
// for the test's own checks. The operator's CLI talks to the services
// directly.
type fixture struct {
	ctx     context.Context
	pg      *testpg.Server
	pool    *pgxpool.Pool
	env     []string // the CLI's environment
	wenv    []string // the workers' environment (through the proxies)
	wdb     string   // the workers' DATABASE_URL (through the proxy)
	pgLink  *link
	redis   *testredis.Server
	rdLink  *link
	partner *partner
	ptLink  *link
	mu      sync.Mutex // guards workers and apps
	workers []*testbin.Proc
	// apps is each worker's application_name in Postgres, which tells its
	// sessions apart in pg_stat_activity (all come through one proxy).
	apps   map[*testbin.Proc]string
	rush   *rushResult
	zombie *zombie // a frozen-worker fault's state
	// faultNote is what the fault noted of where it struck, for the table.
	faultNote string
}

func newFixture(t *testing.T, b *batch, pooler bool) *fixture {
	t.Helper()
	pg := testpg.Start(t)
	ctx := context.Background()
	pc, err := pgxpool.ParseConfig(pg.URL)
	require.NoError(t, err)
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	f := &fixture{ctx: ctx, pg: pg, pool: pool}
	f.pgLink = newLink(t, "postgres", hostPort(t, pg.URL))
	common := []string{"BATCH_TZ=Asia/Seoul", "PERIODIC_JOBS=false", "ADMIN_TOKEN=" + faultAdminToken,
		"MEMBER_JWT_SECRET=" + faultMemberSecret}
	f.env = append(common, "DATABASE_URL="+pg.URL)
	f.wdb = via(t, pg.URL, f.pgLink)
	if pooler {
		// PgBouncer in front of the link, as production runs it: the
		// server connections carry the workers' timeouts as the database's
		// settings, which each worker checks at start.
		testpgbouncer.SetSession(t, pg.URL, config.DefaultWorkerSession)
		bouncer := testpgbouncer.Start(t, f.wdb)
		f.wdb = bouncer.URL(f.wdb)
		common = append(common, "DATABASE_POOLER=transaction", "MIGRATE_DATABASE_URL="+pg.URL)
		f.env = append(slices.Clip(common), "DATABASE_URL="+f.wdb)
	}
	f.wenv = append(slices.Clip(common), "DATABASE_URL="+f.wdb, "ORDER_CALL_TIMEOUT=1s")
	if b.redis {
		f.redis = testredis.Start(t)
		f.rdLink = newLink(t, "redis", hostPort(t, f.redis.URL))
		f.env = append(f.env, "REDIS_URL="+f.redis.URL)
		f.wenv = append(f.wenv, "REDIS_URL="+via(t, f.redis.URL, f.rdLink))
	}
	if b.partner {
		f.partner = startPartner(t, "--latency", "20ms")
		f.ptLink = newLink(t, "partner", hostPort(t, f.partner.url))
		f.wenv = append(f.wenv, "ORDER_API_URL="+via(t, f.partner.url, f.ptLink))
	}
	f.wenv = append(f.wenv, b.env...)
	return f
}

// startWorkers starts n worker processes, each with an application_name of
// its own (tidemark-worker-1, -2, … in start order).
func (f *fixture) startWorkers(t *testing.T, n int) {
	t.Helper()
	for range n {
		f.mu.Lock()
		app := fmt.Sprintf("tidemark-worker-%d", len(f.apps)+1)
		f.mu.Unlock()
		sep := "?"
		if strings.Contains(f.wdb, "?") {
			sep = "&"
		}
		w := testbin.StartWorker(t, append(slices.Clip(f.wenv), "DATABASE_URL="+f.wdb+sep+"application_name="+app)...)
		f.mu.Lock()
		f.workers = append(f.workers, w)
		if f.apps == nil {
			f.apps = map[*testbin.Proc]string{}
		}
		f.apps[w] = app
		f.mu.Unlock()
	}
}

// liveAddr is the HTTP address of the newest worker.
func (f *fixture) liveAddr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.workers[len(f.workers)-1].Addr
}

// enqueue runs the enqueue CLI and requires exit 0.
func (f *fixture) enqueue(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := testbin.Run(t, testbin.Build(t, "enqueue"), f.env, args...)
	require.Equal(t, 0, code, "enqueue %v: %s%s", args, stdout, stderr)
	return stdout
}

// count runs a count query; it fails the test on error (the server must be up).
func (f *fixture) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	return testkit.Count(t, f.pool, sql, args...)
}

// tryCount runs a count query that may fail (a service down, a link cut).
func (f *fixture) tryCount(sql string, args ...any) (int64, error) {
	var n int64
	err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n)
	return n, err
}

// text runs a query returning one text value (the server must be up).
func (f *fixture) text(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, f.pool.QueryRow(f.ctx, sql, args...).Scan(&s), sql)
	return s
}

// allReady waits until every worker's /readyz answers want.
func (f *fixture) allReady(t *testing.T, want int, timeout time.Duration, what string) {
	t.Helper()
	for _, w := range f.workers {
		testkit.WaitFor(t, timeout, what, func() (bool, error) {
			code, _ := get(w.Addr, "/readyz")
			return code == want, nil
		})
	}
}

// waitIdle waits until no job is outstanding, tolerating the server being
// down meanwhile.
func (f *fixture) waitIdle(t *testing.T, timeout time.Duration) {
	t.Helper()
	testkit.WaitFor(t, timeout, "all jobs finished", func() (bool, error) {
		var busy bool
		err := f.pool.QueryRow(f.ctx, `
			SELECT EXISTS (SELECT 1 FROM river_job WHERE state IN ('available', 'running', 'pending', 'retryable', 'scheduled'))`).Scan(&busy)
		return !busy, err
	})
}

// requireNoFailedJobs fails when any job was discarded or cancelled — a fault
// that clears must never leave work given up — unless the batch's givenUp
// says the job ended as its protocol requires.
func (f *fixture) requireNoFailedJobs(t *testing.T, b *batch) {
	t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT id, kind, state::text, args, errors::text FROM river_job WHERE state IN ('discarded', 'cancelled')`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, state, errs string
		var args []byte
		require.NoError(t, rows.Scan(&id, &kind, &state, &args, &errs))
		if b.givenUp == nil || !b.givenUp(t, f, kind, args, errs) {
			t.Errorf("job %d (%s) %s: %s", id, kind, state, errs)
		}
	}
	require.NoError(t, rows.Err())
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func get(addr, path string) (int, string) { return request(http.MethodGet, addr, path, "", "") }

// The workers' operator token and the secret their members' tokens are
// signed with.
const (
	faultAdminToken   = "fault-admin-token-0123456789"
	faultMemberSecret = "fault-member-secret-of-at-least-32-bytes"
)

// postAdmin posts body with the fixture's admin token.
func postAdmin(addr, path, body string) (int, string) {
	return request(http.MethodPost, addr, path, body, faultAdminToken)
}

// memberToken is member's bearer token.
func memberToken(member int64) string {
	tok, err := auth.SignMember([]byte(faultMemberSecret), member, time.Hour, "", "", time.Now())
	if err != nil {
		panic(err)
	}
	return tok
}

// postMember posts an empty body as member.
func postMember(addr, path string, member int64) (int, string) {
	return request(http.MethodPost, addr, path, "", memberToken(member))
}

// request sends one request and returns its status and body (0 and the
// error's text when it got no answer).
func request(method, addr, path, body, token string) (int, string) {
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var sb bytes.Buffer
	_, _ = sb.ReadFrom(resp.Body)
	return resp.StatusCode, sb.String()
}

// partner is the simulated order API, on a database of the shared server (it
// stands for another company: tidemark's outages are not its outages).
type partner struct {
	proc *testbin.Proc
	url  string
	pool *pgxpool.Pool
}

func startPartner(t *testing.T, args ...string) *partner {
	t.Helper()
	pool, dbURL := testkit.Pool(t)
	proc, url := testbin.StartThirdParty(t, dbURL, args...)
	return &partner{proc: proc, url: url, pool: pool}
}
