package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

func init() { register("coupons", benchCoupons) }

// Load shape: a bounded number of requests from a fixed number of
// goroutines over keep-alive connections on loopback, each request a new
// member, against a coupon with half as many seats as requests (so half the
// answers are 202 with a job insert, half 410).
const (
	couponRequests    = 20000
	couponConcurrency = 64
	couponMaxDuration = 30 * time.Second
)

// benchCoupons measures issue requests/s through the real endpoint (Lua step
// + persist job insert) against a handler doing only the Redis step, in the
// same process and run, and checks for oversell.
func benchCoupons(ctx context.Context, env *benchEnv) error {
	gate, closeGate, err := benchGate(env)
	if err != nil {
		return err
	}
	defer closeGate()
	client, err := jobs.NewClient(env.pool, jobs.ClientConfig{Retention: env.cfg.Retention, RescueAfter: env.cfg.RescueAfter}, env.deps())
	if err != nil {
		return err
	}
	callers, err := benchCallers(env)
	if err != nil {
		return err
	}
	// The endpoint as the worker serves it: the member's token verified,
	// their allowance and the gate's step in Redis, the persist job.
	full := &httpapi.Server{Store: env.store, River: client, TZ: env.cfg.TZ, Logger: env.logger, Gate: gate,
		Callers: callers, MemberLimit: coupongate.Limit(env.cfg.Callers.CouponRate)}
	fullURL, stopFull, err := serveLoopback(full.Handler())
	if err != nil {
		return err
	}
	defer stopFull()
	redisURL, stopRedis, err := serveLoopback(redisOnlyHandler(gate))
	if err != nil {
		return err
	}
	defer stopRedis()
	fmt.Printf("%d requests per run, %d concurrent keep-alive clients on 127.0.0.1, every request a new member\n",
		couponRequests, couponConcurrency)

	// Warm both paths (connections, Lua script cache, coupon cache).
	for _, w := range []struct{ url, code string }{{redisURL, "WARM-REDIS"}, {fullURL, "WARM-FULL"}} {
		if err := createBenchCoupon(ctx, env, gate, w.code, 1000); err != nil {
			return err
		}
		if _, err := loadCoupon(ctx, w.url, w.code, 2000); err != nil {
			return err
		}
	}
	var failed []error
	for _, sc := range []struct {
		name  string
		seats int
	}{
		{"rush: half the requests win a seat (202 + job insert), half are sold out (410)", couponRequests / 2},
		{"worst case: every request wins a seat (202 + job insert)", couponRequests},
	} {
		fmt.Println(sc.name)
		if err := benchCouponScenario(ctx, env, gate, redisURL, fullURL, sc.seats); err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

// benchGate returns a coupon gate on REDIS_URL under a key prefix of its
// own, and a function that deletes the prefix's keys and closes the client.
func benchGate(env *benchEnv) (*coupongate.Gate, func(), error) {
	opt, err := redis.ParseURL(env.cfg.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	opt.PoolSize = 128
	rdb := redis.NewClient(opt)
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	prefix := "bench:" + hex.EncodeToString(r) + ":"
	return coupongate.New(rdb, prefix), func() {
		iter := rdb.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			rdb.Del(context.Background(), iter.Val())
		}
		_ = rdb.Close()
	}, nil
}

// benchSecret is the HS256 key the bench's members' tokens are signed with
// and its endpoints verify them with, as the worker with MEMBER_JWT_SECRET.
var benchSecret = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return []byte(hex.EncodeToString(b))
}()

// benchCallers is who may call a bench's endpoint: members with tokens
// signed with benchSecret.
func benchCallers(env *benchEnv) (*httpapi.Callers, error) {
	m, err := auth.NewMembers(context.Background(), auth.MemberOpts{Secret: benchSecret})
	if err != nil {
		return nil, err
	}
	return &httpapi.Callers{Members: m, Logger: env.logger}, nil
}

// benchMembers numbers the members of every load in the process, so each
// request is a new member with an allowance of its own.
var benchMembers atomic.Int64

// memberTokens signs a token for each of n new members, before a load's
// clock starts (an identity provider signs them, not the client).
func memberTokens(n int) (first int64, tokens []string, err error) {
	first = benchMembers.Add(int64(n)) - int64(n) + 1
	tokens = make([]string, n)
	now := time.Now()
	for i := range tokens {
		if tokens[i], err = auth.SignMember(benchSecret, first+int64(i), time.Hour, "", "", now); err != nil {
			return 0, nil, err
		}
	}
	return first, tokens, nil
}

var benchScenario atomic.Int64

func createBenchCoupon(ctx context.Context, env *benchEnv, gate *coupongate.Gate, code string, seats int) error {
	if _, err := env.store.CreateCoupon(ctx, store.NewCoupon{Code: code, Name: code, AmountType: "FIX", Amount: 1,
		TotalQuantity: seats, Status: store.CouponActive}); err != nil {
		return err
	}
	_, err := gate.Load(ctx, code, int64(seats), nil)
	return err
}

// couponRounds alternates the two handlers this many times per scenario and
// reports the median round of each, so a burst of load from elsewhere on a
// shared machine does not decide the ratio.
const couponRounds = 3

func benchCouponScenario(ctx context.Context, env *benchEnv, gate *coupongate.Gate, redisURL, fullURL string, seats int) error {
	var ros, fus []loadResult
	oversell, accepted, jobsTotal := 0, 0, 0
	for round := 0; round < couponRounds; round++ {
		n := benchScenario.Add(1)
		roCode, fuCode := fmt.Sprintf("REDIS-%d", n), fmt.Sprintf("FULL-%d", n)
		for _, c := range []string{roCode, fuCode} {
			if err := createBenchCoupon(ctx, env, gate, c, seats); err != nil {
				return err
			}
		}
		ro, err := loadCoupon(ctx, redisURL, roCode, couponRequests)
		if err != nil {
			return err
		}
		fu, err := loadCoupon(ctx, fullURL, fuCode, couponRequests)
		if err != nil {
			return err
		}
		ros, fus = append(ros, ro), append(fus, fu)

		// Oversell: accepted answers, seats taken in Redis, persist jobs written.
		st, err := gate.State(ctx, fuCode)
		if err != nil {
			return err
		}
		var jobsN int
		if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'coupon_issue_persist' AND args->>'coupon_code' = $1`,
			fuCode).Scan(&jobsN); err != nil {
			return err
		}
		oversell = max(oversell, fu.status[202]-seats, len(st.Members)-seats, jobsN-seats)
		if fu.status[202] != jobsN || len(st.Members) != jobsN {
			return fmt.Errorf("%d accepted, %d in Redis, but %d persist jobs", fu.status[202], len(st.Members), jobsN)
		}
		accepted += fu.status[202]
		jobsTotal += jobsN
	}
	ro, fu := median(ros), median(fus)
	for _, x := range []struct {
		name string
		res  loadResult
	}{{"redis step only", ro}, {"full endpoint", fu}} {
		fmt.Printf("  %-16s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (median of %d rounds; %d in %s, by status %v)\n",
			x.name, x.res.rps(), ms(x.res.pct(50)), ms(x.res.pct(99)), couponRounds, x.res.n, x.res.elapsed.Round(time.Millisecond), x.res.status)
	}
	ratio := fu.rps() / ro.rps()
	fmt.Printf("  full / redis-only = %.0f%%\n", 100*ratio)
	fmt.Printf("  oversell %d (seats %d per round; over %d rounds %d accepted = %d persist jobs)\n",
		oversell, seats, couponRounds, accepted, jobsTotal)
	if oversell != 0 {
		return fmt.Errorf("oversold by %d", oversell)
	}
	return nil
}

func median(rs []loadResult) loadResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b loadResult) int { return cmp.Compare(a.rps(), b.rps()) })
	return s[len(s)/2]
}

// redisOnlyHandler answers like the real endpoint but does only the gate's
// Lua step: the baseline.
func redisOnlyHandler(gate *coupongate.Gate) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/coupons/{code}/issue", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MemberID int64 `json:"memberId"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.MemberID <= 0 {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		res, err := gate.Issue(r.Context(), r.PathValue("code"), req.MemberID)
		status := map[coupongate.Result]int{coupongate.Issued: 202, coupongate.AlreadyIssued: 409,
			coupongate.SoldOut: 410, coupongate.NotLoaded: 503}[res]
		if err != nil {
			status = 503
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	return mux
}

func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

type loadResult struct {
	n        int
	elapsed  time.Duration
	lat      []time.Duration
	status   map[int]int
	firstErr error
}

func (r loadResult) rps() float64 { return rate(r.n, r.elapsed) }

func (r loadResult) pct(p int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, len(r.lat)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadCoupon sends n issue requests (members 1..n) for code from
// couponConcurrency goroutines, stopping early at couponMaxDuration.
func loadCoupon(ctx context.Context, baseURL, code string, n int) (loadResult, error) {
	return loadCouponMidway(ctx, baseURL, code, n, nil)
}

// loadCouponMidway is loadCoupon that also starts midway, in a goroutine of
// its own, once half the requests were answered (midway may be nil).
func loadCouponMidway(ctx context.Context, baseURL, code string, n int, midway func()) (loadResult, error) {
	first, tokens, err := memberTokens(n)
	if err != nil {
		return loadResult{}, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: couponConcurrency, MaxConnsPerHost: couponConcurrency}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := baseURL + "/v1/coupons/" + code + "/issue"
	var next, answered atomic.Int64
	var mu sync.Mutex
	res := loadResult{status: map[int]int{}}
	deadline := time.Now().Add(couponMaxDuration)
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < couponConcurrency; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, n/couponConcurrency+1)
			status := map[int]int{}
			var firstErr error
			for ctx.Err() == nil && time.Now().Before(deadline) {
				m := next.Add(1)
				if m > int64(n) {
					break
				}
				t0 := time.Now()
				// Both endpoints get the same request: the member's token (the
				// full one verifies it) and their id (the Redis-only one reads it).
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url,
					strings.NewReader(fmt.Sprintf(`{"memberId":%d}`, first+m-1)))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tokens[m-1])
				resp, err := hc.Do(req)
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				status[resp.StatusCode]++
				if answered.Add(1) == int64(n/2) && midway != nil {
					go midway()
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			for k, v := range status {
				res.status[k] += v
			}
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	if res.firstErr != nil {
		return res, fmt.Errorf("load %s: %w", code, res.firstErr)
	}
	if res.n == 0 {
		return res, errors.New("load: no request completed")
	}
	return res, nil
}
