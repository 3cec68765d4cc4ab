package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/partnersim"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/orderapi"
	"github.com/tidemark/tidemark/partnerbudget"
)

func init() { register("orders", benchOrders) }

// Figures of the orders benchmark.
const (
	benchOrderRequests   = 10_000
	benchOrderSequential = 500 // the sequential design at 20 ms a call: ~10 s
	benchOrderWorkers    = 64
	benchOrderLatency    = 20 * time.Millisecond
)

// benchOrders sends 10,000 order requests through order_submit with 64
// outbound workers against cmd/thirdparty answering after 20 ms, every state
// change committed, and compares calls/s with the concurrency bound 64 ÷ 20
// ms = 3,200 calls/s; then runs the sequential design tidemark replaces (the same
// protocol, one call after another) on 500 more for contrast.
func benchOrders(ctx context.Context, env *benchEnv) error {
	tpURL, tpPID, stop, err := startBenchThirdParty(ctx, env.dbURL, "--latency", benchOrderLatency.String())
	if err != nil {
		return err
	}
	defer stop()
	api := orderapi.New(tpURL, 10*time.Second, benchOrderWorkers)
	deps := env.deps()
	deps.OrderAPI = api
	bound := float64(benchOrderWorkers) / benchOrderLatency.Seconds()
	fmt.Printf("machine: %d CPUs, load average %s\n", runtime.NumCPU(), loadAverage())

	run, err := runOrderBatch(ctx, env, deps, tpURL, tpPID, "2025-02", benchOrderRequests)
	if err != nil {
		return err
	}
	calls, elapsed := run.calls, run.elapsed
	fmt.Printf("full protocol, %d outbound workers, latency %s: %d requests, %d POSTs in %s\n",
		benchOrderWorkers, benchOrderLatency, benchOrderRequests, calls, elapsed.Round(time.Millisecond))
	fmt.Printf("  %.0f calls/s = %.0f%% of the concurrency bound %.0f calls/s\n",
		rate(calls, elapsed), 100*rate(calls, elapsed)/bound, bound)
	fmt.Printf("  the partner answered a request in %s on average (the bound assumes %s)\n",
		run.answerMean.Round(10*time.Microsecond), benchOrderLatency)
	st := run.stages
	fmt.Printf("  a job's cycle, mean of %d attempts: River's fetch to Work %s, claim %s, call %s, apply %s; %.1f of %d workers in Work on average\n",
		st.Attempts, roundMS(st.FetchToWork), roundMS(st.Claim), roundMS(st.Call), roundMS(st.Apply),
		st.InWork.Seconds()/elapsed.Seconds(), benchOrderWorkers)
	perCall := func(i int) float64 { return 1000 * run.cpu[i] / float64(calls) }
	total := perCall(0) + perCall(1) + perCall(2)
	fmt.Printf("  CPU per call: worker %.2f ms + partner %.2f ms + postgres backends %.2f ms = %.2f ms; %d CPUs allow at most %.0f calls/s on an idle machine\n",
		perCall(0), perCall(1), perCall(2), total, runtime.NumCPU(), float64(runtime.NumCPU())*1000/total)

	if err := benchOrdersLimited(ctx, env, deps, tpURL, tpPID, rate(calls, elapsed)); err != nil {
		return err
	}

	// The same run with no latency: what this machine can do right now, so
	// the ratio above can be read as "latency-bound" or "CPU-bound".
	if err := setBenchLatency(ctx, tpURL, 0); err != nil {
		return err
	}
	run0, err := runOrderBatch(ctx, env, deps, tpURL, tpPID, "2025-04", benchOrderRequests)
	if err != nil {
		return err
	}
	c0, e0 := run0.calls, run0.elapsed
	fmt.Printf("  ceiling with latency 0 on this machine now: %.0f calls/s; the 20 ms run reached %.0f%% of it\n",
		rate(c0, e0), 100*rate(calls, elapsed)/rate(c0, e0))
	if err := setBenchLatency(ctx, tpURL, benchOrderLatency); err != nil {
		return err
	}

	// The design tidemark replaces: one item after another, same protocol.
	seq := make([]order.Request, benchOrderSequential)
	for i := range seq {
		seq[i] = order.Request{Username: fmt.Sprintf("user%05d", i), TotalPrice: 10000, AppliedYearMonth: "2025-03"}
	}
	var ids []int64
	if err := env.store.InTx(ctx, func(tx pgx.Tx) error {
		ids, err = env.store.InsertOrderRequestsTx(ctx, tx, seq)
		return err
	}); err != nil {
		return err
	}
	cpuSeq0, err := cpuSeconds(ctx, env, tpPID)
	if err != nil {
		return err
	}
	start := time.Now()
	for _, id := range ids {
		claims, err := env.store.ClaimOrderRequests(ctx, []int64{id})
		if err != nil {
			return err
		}
		row := claims[id].Row
		o, err := api.Create(ctx, orderapi.OrderRequest{Username: row.Username, TotalPrice: row.TotalPrice, AppliedYearMonth: row.AppliedYearMonth})
		if err != nil {
			return err
		}
		if err := env.store.InTx(ctx, func(tx pgx.Tx) error {
			_, err := env.store.MarkOrderAppliedTx(ctx, tx, id, o.ID, o.CreatedAt)
			return err
		}); err != nil {
			return err
		}
	}
	seqElapsed := time.Since(start)
	cpuSeq1, err := cpuSeconds(ctx, env, tpPID)
	if err != nil {
		return err
	}
	fmt.Printf("sequential (one call after another), latency %s: %d calls in %s = %.0f calls/s = %.1f%% of the bound; the concurrent run is %.0fx faster\n",
		benchOrderLatency, len(ids), seqElapsed.Round(time.Millisecond), rate(len(ids), seqElapsed),
		100*rate(len(ids), seqElapsed)/bound, rate(calls, elapsed)/rate(len(ids), seqElapsed))
	seqPerCall := func(i int) float64 { return 1000 * (cpuSeq1[i] - cpuSeq0[i]) / float64(len(ids)) }
	fmt.Printf("  CPU per call without River (sequential loop): worker %.2f ms + partner %.2f ms + postgres backends %.2f ms\n",
		seqPerCall(0), seqPerCall(1), seqPerCall(2))
	return nil
}

// orderRun is one batch's outcome: POSTs made, the time from start to the
// last row settled, the partner's mean time to answer a request, and the CPU
// seconds the bench process, the partner and the database's backends used
// while the jobs were worked (the requests' insert before excluded).
type orderRun struct {
	calls      int
	elapsed    time.Duration
	answerMean time.Duration
	cpu        [3]float64
	stages     orderStages
}

func roundMS(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// runOrderBatch inserts n requests for month (rows and jobs in one
// transaction), then works them with a River client set up as the worker
// binary's outbound queue, and returns the POSTs made and the time from
// start to the last row settled.
func runOrderBatch(ctx context.Context, env *benchEnv, deps jobs.Deps, tpURL string, tpPID int, month string, n int) (orderRun, error) {
	inserter, err := jobs.NewClient(env.pool, jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second, PollOnly: env.pollOnly}, deps)
	if err != nil {
		return orderRun{}, err
	}
	in := make([]order.Request, n)
	for i := range in {
		in[i] = order.Request{Username: fmt.Sprintf("user%05d", i), TotalPrice: 10000, AppliedYearMonth: month}
	}
	if _, err := jobs.CreateOrderRequests(ctx, inserter, env.store, in); err != nil {
		return orderRun{}, err
	}
	before, err := thirdPartyStats(ctx, tpURL)
	if err != nil {
		return orderRun{}, err
	}
	stages := &orderStageTimes{}
	deps.OrderAPI = timedOrderAPI{api: deps.OrderAPI, stages: stages}
	client, err := jobs.NewClient(env.pool, jobs.ClientConfig{
		Queues:        map[string]int{jobs.QueueOutbound: benchOrderWorkers},
		Retention:     24 * time.Hour,
		RescueAfter:   90 * time.Second,
		FetchCooldown: env.cfg.FetchCooldown,
		PollOnly:      env.pollOnly,
		Middleware:    []rivertype.Middleware{stages},
	}, deps)
	if err != nil {
		return orderRun{}, err
	}
	cpu0, err := cpuSeconds(ctx, env, tpPID)
	if err != nil {
		return orderRun{}, err
	}
	// Every job ends completed (APPLIED) or cancelled (FAILED).
	start, stop, err := startAndAwait(ctx, client, n, 5*time.Minute, func(ev *river.Event) bool {
		return ev.Job.Kind == (jobs.OrderSubmitArgs{}).Kind() && ev.Job.State != rivertype.JobStateRetryable
	}, river.EventKindJobCompleted, river.EventKindJobCancelled, river.EventKindJobFailed)
	defer stop()
	if err != nil {
		return orderRun{}, fmt.Errorf("orders: %w", err)
	}
	cpu1, err := cpuSeconds(ctx, env, tpPID)
	if err != nil {
		return orderRun{}, err
	}
	// River reports completions in batches, up to a few hundred ms after
	// their commit; the run ended when the last row was settled, i.e. when
	// its APPLIED (or FAILED) was written, by this machine's clock.
	var last time.Time
	if err := env.pool.QueryRow(ctx, `SELECT max(updated_at) FROM order_request WHERE applied_year_month = $1`, month).Scan(&last); err != nil {
		return orderRun{}, err
	}
	elapsed := last.Sub(start)
	if left, err := unsettledOrders(ctx, env.pool); err != nil || left > 0 {
		return orderRun{}, fmt.Errorf("orders: %d requests left PENDING or SENDING (%v)", left, err)
	}
	after, err := thirdPartyStats(ctx, tpURL)
	if err != nil {
		return orderRun{}, err
	}
	run := orderRun{calls: int(after.Posts - before.Posts), elapsed: elapsed, stages: stages.snapshot()}
	for i := range run.cpu {
		run.cpu[i] = cpu1[i] - cpu0[i]
	}
	if a := after.Answered - before.Answered; a > 0 {
		run.answerMean = time.Duration((after.AnswerMicros-before.AnswerMicros)/a) * time.Microsecond
	}
	return run, nil
}

func setBenchLatency(ctx context.Context, tpURL string, d time.Duration) error {
	body := fmt.Sprintf(`{"latency":%q}`, d.String())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, tpURL+"/_faults", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("thirdparty faults: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("thirdparty faults: %s", resp.Status)
	}
	return nil
}

// cpuSeconds returns the CPU time (user+system) used so far by this
// process, the partner process, and the Postgres backends serving this
// benchmark's database.
func cpuSeconds(ctx context.Context, env *benchEnv, tpPID int) ([3]float64, error) {
	var out [3]float64
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return out, err
	}
	out[0] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	out[1] = procCPU(tpPID)
	rows, err := env.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return out, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return out, err
	}
	for _, pid := range pids {
		out[2] += procCPU(int(pid))
	}
	return out, nil
}

// procCPU reads a process's user+system CPU seconds from /proc (0 if gone).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

var benchListeningRE = regexp.MustCompile(`msg="thirdparty listening" addr=(\S+)`)

// startBenchThirdParty runs bin/thirdparty (next to this binary, as `make
// bench` builds it) or else builds ./cmd/thirdparty, on a free port.
func startBenchThirdParty(ctx context.Context, dbURL string, args ...string) (string, int, func(), error) {
	path := ""
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "thirdparty"); fileExists(p) {
			path = p
		}
	}
	if path == "" {
		dir, err := os.MkdirTemp("", "tidemark-bench-")
		if err != nil {
			return "", 0, nil, err
		}
		path = filepath.Join(dir, "thirdparty")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/thirdparty").CombinedOutput(); err != nil {
			return "", 0, nil, fmt.Errorf("build thirdparty (run from the module root, or make build): %v\n%s", err, out)
		}
	}
	cmd := exec.Command(path, append([]string{"--addr", "127.0.0.1:0", "--database-url", dbURL}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("start thirdparty: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := benchListeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a, cmd.Process.Pid, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", 0, nil, errors.New("thirdparty did not start within 30s")
	}
}

func thirdPartyStats(ctx context.Context, base string) (partnersim.Stats, error) {
	var s partnersim.Stats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("thirdparty stats: %w", err)
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// benchOrdersLimited runs half as many requests again with ORDER_API_RATE
// set to half the rate the unlimited run reached, through the shared
// budget in Redis, and prints the rate reached against the rate set.
func benchOrdersLimited(ctx context.Context, env *benchEnv, deps jobs.Deps, tpURL string, tpPID int, unlimited float64) error {
	opt, err := redis.ParseURL(env.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := coupongate.NewRedis(opt)
	defer rdb.Close()
	set := math.Floor(unlimited / 2)
	deps.PartnerBudget = partnerbudget.New(rdb, partnerbudget.Settings{Rate: set,
		Prefix: "bench:partner:" + env.dbName, CallTimeout: 10 * time.Second}, nil)
	run, err := runOrderBatch(ctx, env, deps, tpURL, tpPID, "2025-05", benchOrderRequests/2)
	if err != nil {
		return err
	}
	got := rate(run.calls, run.elapsed)
	fmt.Printf("  ORDER_API_RATE=%.0f (half the unlimited %.0f calls/s), shared budget in Redis: %d POSTs in %s = %.0f calls/s = %.1f%% of the rate set\n",
		set, unlimited, run.calls, run.elapsed.Round(time.Millisecond), got, 100*got/set)
	return nil
}
