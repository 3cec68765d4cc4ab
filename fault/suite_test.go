package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// A fault is injected into a running batch and then cleared; inject returns
// how long the workers took to answer again after it cleared.
type fault struct {
	name string
	// applies reports whether the fault concerns b (a Redis fault needs a
	// batch that uses Redis).
	applies func(b *batch) bool
	// fast lists the batches `make test` injects the fault into; `make
	// chaos` injects it into every batch it applies to.
	fast   []*batch
	inject func(t *testing.T, f *fixture, b *batch) (ready time.Duration)
	// workers is how many worker processes the case runs when the fault
	// needs more than the batch has; env is their extra environment.
	workers int
	env     []string
	// pooler puts a private PgBouncer in transaction mode between the
	// workers (and the CLI) and Postgres' link, with DATABASE_POOLER=transaction.
	pooler bool
	// moment, if set, is called once the batch started and returns when
	// the fault is to be injected, at about the fraction at of the run, with
	// a note on where that is; nil: once the batch has done at of its work.
	moment func(t *testing.T, f *fixture, b *batch, at float64) (note string)
	// after, if set, runs once the batch has finished and its results were
	// checked: what the fault still has to show.
	after func(t *testing.T, f *fixture, b *batch, o *outcome)
}

func all(*batch) bool           { return true }
func usesRedis(b *batch) bool   { return b.redis }
func usesPartner(b *batch) bool { return b.partner }
func readyAgain(t *testing.T, f *fixture) time.Duration {
	t.Helper()
	cleared := time.Now()
	f.allReady(t, http.StatusOK, 30*time.Second, "worker /readyz 200 after the fault cleared")
	return time.Since(cleared)
}

// hold keeps a fault on until the batch has done `more` further units of
// work under it, or for at most limit (a fault that stops all work is
// cleared after limit).
func hold(t *testing.T, f *fixture, b *batch, more int64, limit time.Duration) {
	t.Helper()
	start, err := b.done(f)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	// Past limit the fault is cleared anyway: the deadline is not a failure.
	_ = testkit.Poll(ctx, testkit.PollInterval, func() (bool, error) {
		n, err := b.done(f)
		return n >= start+more, err
	})
}

// slowed is a fault that slows a link with a toxic (see link.toxicOn) while
// the batch does a part-th of its work under it, for at most limit. Only
// `make chaos` runs it.
func slowed(name string, applies func(*batch) bool, which func(*fixture) *link, direction, typ, attributes string,
	part int64, limit time.Duration,
) fault {
	return fault{name: name, applies: applies, inject: func(t *testing.T, f *fixture, b *batch) time.Duration {
		remove := which(f).toxicOn(t, direction, typ, attributes)
		hold(t, f, b, b.size/part, limit)
		remove()
		return 0
	}}
}

// cut is a fault that puts a toxic on a link (see link.toxicOn) until felt
// has seen its effect, removes it, and returns what back measures.
func cut(name string, applies func(*batch) bool, fast []*batch, which func(*fixture) *link, direction, typ, attributes string,
	felt func(t *testing.T, f *fixture), back func(t *testing.T, f *fixture) time.Duration,
) fault {
	return fault{name: name, applies: applies, fast: fast, inject: func(t *testing.T, f *fixture, b *batch) time.Duration {
		remove := which(f).toxicOn(t, direction, typ, attributes)
		felt(t, f)
		remove()
		return back(t, f)
	}}
}

// readyz503 is felt once every worker's /readyz answers 503.
func readyz503(why string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		f.allReady(t, http.StatusServiceUnavailable, 10*time.Second, "worker /readyz 503 while "+why)
	}
}

// more503 is felt once the rush got more than n further 503 answers.
func more503(n int, limit time.Duration) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		seen := f.rush.count(http.StatusServiceUnavailable)
		testkit.WaitFor(t, limit, "requests answered 503 while Redis is cut off", func() (bool, error) {
			return f.rush.count(http.StatusServiceUnavailable) > seen+n, nil
		})
	}
}

// jobsFailing is felt once some job of kind failed an attempt.
func jobsFailing(kind string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		jobsErrored(t, f, kind, 20*time.Second)
	}
}

// noWait measures nothing after a fault whose batch needs no answer back.
func noWait(*testing.T, *fixture) time.Duration { return 0 }

func pgLink(f *fixture) *link { return f.pgLink }
func rdLink(f *fixture) *link { return f.rdLink }
func ptLink(f *fixture) *link { return f.ptLink }

// gateAnswers waits until the rush's requests are answered by the coupon gate
// again (a 202 or a 410) after a Redis fault cleared, and returns how long
// that took.
func gateAnswers(t *testing.T, f *fixture) time.Duration {
	t.Helper()
	cleared := time.Now()
	answered := f.rush.count(http.StatusAccepted) + f.rush.count(http.StatusGone)
	testkit.WaitFor(t, 30*time.Second, "requests answered by the gate again", func() (bool, error) {
		return f.rush.count(http.StatusAccepted)+f.rush.count(http.StatusGone) > answered, nil
	})
	return time.Since(cleared)
}

// jobsErrored waits until some job has failed an attempt since the fault
// began (the fault was felt), for at most limit.
func jobsErrored(t *testing.T, f *fixture, kind string, limit time.Duration) {
	t.Helper()
	before := f.count(t, `SELECT coalesce(sum(cardinality(errors)), 0) FROM river_job WHERE kind = $1`, kind)
	testkit.WaitFor(t, limit, kind+" attempts failing under the fault", func() (bool, error) {
		var n int64
		err := f.pool.QueryRow(f.ctx, `SELECT coalesce(sum(cardinality(errors)), 0) FROM river_job WHERE kind = $1`, kind).Scan(&n)
		return n > before, err
	})
}

// pgCrash crashes Postgres while the batch runs, checks that the workers
// say so, and starts it again.
func pgCrash(t *testing.T, f *fixture, b *batch) time.Duration {
	require.NoError(t, f.pg.Crash())
	f.allReady(t, http.StatusServiceUnavailable, 10*time.Second, "worker /readyz 503 while Postgres is down")
	// A request during the outage is refused with a reason, not a 500.
	code, body := postAdmin(f.liveAddr(), "/v1/order-requests", `{"username": "outage", "totalPrice": 1, "appliedYearMonth": "2026-11"}`)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "postgres unavailable")
	require.NoError(t, f.pg.Start())
	return readyAgain(t, f)
}

var faults = []fault{
	{name: "postgres crash", applies: all, fast: allBatches, inject: pgCrash},
	// The same crash with PgBouncer in front: the pooler's server connections
	// die with the server and are opened again once it is back.
	{name: "postgres crash through pgbouncer", applies: all, fast: allBatches, pooler: true, inject: pgCrash},
	cut("postgres link reset", all, []*batch{settlement}, pgLink, "both", "reset_peer", `{"timeout": 0}`,
		readyz503("every connection is reset"), readyAgain),
	// Nothing gets through; connections are closed after 2 s, as when a
	// network partition is finally noticed.
	cut("postgres link hang 2s", all, []*batch{exchange}, pgLink, "both", "timeout", `{"timeout": 2000}`,
		readyz503("Postgres does not answer"), readyAgain),
	{
		name: "redis killed, back empty", applies: usesRedis, fast: []*batch{coupons},
		inject: func(t *testing.T, f *fixture, b *batch) time.Duration {
			f.redis.Kill()
			// Long enough for go-redis to give up dialing (after PoolSize
			// failed dials it would probe only once a second).
			seen := f.rush.count(http.StatusServiceUnavailable)
			testkit.WaitFor(t, 10*time.Second, "requests answered 503 while Redis is away", func() (bool, error) {
				return f.rush.count(http.StatusServiceUnavailable) > seen+200, nil
			})
			require.NoError(t, f.redis.Start())
			back := time.Now()
			// The worker reaches the new, empty Redis: the gate answers
			// "not loaded" instead of a dial error.
			testkit.WaitFor(t, 30*time.Second, "the worker reaches Redis again", func() (bool, error) {
				code, body := postMember(f.workers[0].Addr, "/v1/coupons/RUSH/issue", 999999999)
				return code == http.StatusServiceUnavailable && strings.Contains(body, "not loaded"), nil
			})
			ready := time.Since(back)
			// The runbook's rebuild of the gate from Postgres.
			f.enqueue(t, "coupon", "load-redis", "--code", "RUSH")
			return ready
		},
	},
	cut("redis link reset", usesRedis, []*batch{coupons}, rdLink, "both", "reset_peer", `{"timeout": 0}`,
		more503(50, 10*time.Second), gateAnswers),
	{
		name: "worker SIGTERM", applies: all, fast: []*batch{settlement, therapy},
		inject: func(t *testing.T, f *fixture, b *batch) time.Duration {
			// A rolling deploy: a new worker starts, the old one gets
			// SIGTERM, finishes or hands back what it runs within
			// SHUTDOWN_GRACE (5 s), and exits 0.
			old := f.workers[0]
			began := time.Now()
			f.startWorkers(t, 1)
			ready := time.Since(began)
			require.NoError(t, old.Stop(30*time.Second), "the stopped worker's exit")
			f.mu.Lock()
			f.workers = f.workers[1:]
			f.mu.Unlock()
			require.Contains(t, old.Output(), `msg="worker stopped"`)
			return ready
		},
	},
	cut("redis link hang 2s", usesRedis, nil, rdLink, "both", "timeout", `{"timeout": 2000}`,
		more503(0, 20*time.Second), gateAnswers),
	// The partner accepts connections; requests never reach it.
	cut("partner hangs before storing", usesPartner, []*batch{orders}, ptLink, "upstream", "timeout", `{"timeout": 0}`,
		jobsFailing("order_submit"), noWait),
	// Requests reach the partner, which stores the orders; the answers
	// never come back.
	cut("partner hangs after storing", usesPartner, []*batch{orders}, ptLink, "downstream", "timeout", `{"timeout": 0}`,
		jobsFailing("order_submit"), noWait),
	slowed("postgres link latency 20ms", all, pgLink, "both", "latency", `{"latency": 20, "jitter": 5}`, 10, 20*time.Second),
	slowed("postgres link crawl 64KBps", all, pgLink, "both", "bandwidth", `{"rate": 64}`, 20, 5*time.Second),
	slowed("redis link latency 20ms", usesRedis, rdLink, "both", "latency", `{"latency": 20, "jitter": 5}`, 10, 20*time.Second),
	slowed("redis link crawl 16KBps", usesRedis, rdLink, "both", "bandwidth", `{"rate": 16}`, 20, 5*time.Second),
	slowed("partner slow 300ms", usesPartner, ptLink, "downstream", "latency", `{"latency": 300}`, 10, 20*time.Second),
	slowed("partner link crawl 16KBps", usesPartner, ptLink, "both", "bandwidth", `{"rate": 16}`, 20, 5*time.Second),
	cut("partner link reset", usesPartner, nil, ptLink, "both", "reset_peer", `{"timeout": 0}`,
		jobsFailing("order_submit"), noWait),
	// The coupon rush has no long job (its persist jobs are one idempotent
	// INSERT each, 10 s at most) and its requests are answered by the
	// process itself: a frozen one just leaves them hanging.
	zombieFault("worker frozen (zombie)", false, []*batch{settlement, orders}),
	zombieFault("worker frozen (zombie) inside a transaction", true, []*batch{therapy, exchange}),
}

// TestFaults injects every fault into the batches it is run against (the
// fast cases in `make test`, all in `make chaos`, CHAOS_REPS times each), at
// moment(rep) of each run, with the workers left running. After the fault
// clears, every batch must end with the results a direct SQL computation
// gives, nothing lost, nothing done twice, and no job given up.
func TestFaults(t *testing.T) {
	n := reps(t)
	for _, fl := range faults {
		batches := fl.fast
		if chaos() {
			batches = nil
			for _, b := range allBatches {
				if fl.applies(b) {
					batches = append(batches, b)
				}
			}
		}
		for _, b := range batches {
			for rep := range n {
				t.Run(fmt.Sprintf("%s/%s/%d", fl.name, b.name, rep+1), func(t *testing.T) {
					t.Parallel()
					runCase(t, fl, b, rep, n)
				})
			}
		}
	}
}

func runCase(t *testing.T, fl fault, b *batch, rep, n int) {
	o := outcome{Fault: fl.name, Batch: b.name, Rep: rep}
	var f *fixture
	defer func() {
		if f != nil && f.faultNote != "" {
			o.Note += "; " + f.faultNote
		}
		record(t, o)
	}()
	f = newFixture(t, b, fl.pooler)
	if b.load != nil {
		b.load(t, f)
	}
	f.wenv = append(f.wenv, fl.env...)
	f.startWorkers(t, max(b.workers, fl.workers))
	if fl.pooler {
		// Each worker started through the pooler, its timeouts checked.
		for _, w := range f.workers {
			require.Contains(t, w.Output(), "database_pooler=transaction")
		}
	}
	b.start(t, f)
	if fl.moment != nil {
		o.Note = fl.moment(t, f, b, moment(rep, n))
	} else {
		at := int64(moment(rep, n) * float64(b.size))
		testkit.WaitFor(t, 60*time.Second, "work done before the fault", func() (bool, error) {
			n, err := b.done(f)
			return n >= at, err
		})
		o.Note = fmt.Sprintf("%d of %d %s", at, b.size, b.unit)
	}
	began := time.Now()
	o.Ready = fl.inject(t, f, b)
	if b.finish != nil {
		b.finish(t, f)
	} else {
		f.defaultFinish(t)
	}
	o.Done = time.Since(began)
	o.Lost, o.Dups = b.verify(t, f)
	f.requireNoFailedJobs(t, b)
	if fl.after != nil {
		fl.after(t, f, b, &o)
	}
}
