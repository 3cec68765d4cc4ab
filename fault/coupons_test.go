package fault_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testredis"
)

// rushResult is what a rush's requests were answered.
type rushResult struct {
	mu       sync.Mutex
	byStatus map[int]int
	accepted map[int64]bool
	sent     atomic.Int64
	done     chan struct{}
}

// rush sends issue requests for coupon code to addr, member after member
// from 1 (every fifth request repeats the member before), from 16
// goroutines, until stop is closed and more than min requests were sent, or
// max were.
func rush(addr, code string, min, max int64, stop <-chan struct{}) *rushResult {
	res := &rushResult{byStatus: map[int]int{}, accepted: map[int64]bool{}, done: make(chan struct{})}
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				stopped := false
				select {
				case <-stop:
					stopped = true
				default:
				}
				if i > max || (stopped && i > min) {
					return
				}
				member := i
				if i%5 == 0 {
					member = i - 1 // asks again
				}
				body := fmt.Sprintf(`{"memberId": %d}`, member)
				status := 0
				resp, err := client.Post("http://"+addr+"/v1/coupons/"+code+"/issue", "application/json", bytes.NewBufferString(body))
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				res.sent.Add(1)
				res.mu.Lock()
				res.byStatus[status]++
				if status == http.StatusAccepted {
					res.accepted[member] = true
				}
				res.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(res.done) }()
	return res
}

func (r *rushResult) wait() { <-r.done }

func (r *rushResult) count(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byStatus[status]
}

// requireCouponsKept checks what a rush must leave: only 202, 409, 410 and
// 503 answers (never a 500 or a dropped connection), every 202 with its
// coupon_issue row, no more issues than the coupon has, and Redis holding
// exactly the members Postgres holds. It returns the 202s without a row.
func (b *bundle) requireCouponsKept(t *testing.T, rdb *redis.Client, res *rushResult, code string, total int) (lost int64) {
	t.Helper()
	for status, n := range res.byStatus {
		switch status {
		case http.StatusAccepted, http.StatusConflict, http.StatusGone, http.StatusServiceUnavailable:
		default:
			t.Errorf("%d requests answered %d", n, status)
		}
	}
	rows, err := b.pool.Query(b.ctx, `
		SELECT i.member_id FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id WHERE c.code = $1`, code)
	require.NoError(t, err)
	issued := map[int64]bool{}
	for rows.Next() {
		var m int64
		require.NoError(t, rows.Scan(&m))
		issued[m] = true
	}
	require.NoError(t, rows.Err())
	for m := range res.accepted {
		if !issued[m] {
			lost++
		}
	}
	require.Zero(t, lost, "202s without their coupon_issue row")
	require.LessOrEqual(t, len(issued), total, "oversold")
	members, err := rdb.SMembers(context.Background(), "coupon:issued:"+code).Result()
	require.NoError(t, err)
	require.Len(t, members, len(issued), "Redis and Postgres disagree on who holds the coupon")
	return lost
}

// TestPostgresCrashDuringCouponRush crash-restarts Postgres in the middle of
// a rush on a coupon; the worker is not restarted. Requests during the outage
// get 503, every 202 is kept, nothing is oversold, and Redis ends in
// agreement with Postgres.
func TestPostgresCrashDuringCouponRush(t *testing.T) {
	t.Parallel()
	n := reps(t)
	for rep := range n {
		t.Run(fmt.Sprint(rep), func(t *testing.T) {
			o := outcome{Fault: "postgres crash", Batch: "coupon rush", Rep: rep}
			defer func() { record(t, o) }()
			rs := testredis.Start(t)
			b := setup(t, "REDIS_URL="+rs.URL)
			const total = 1000
			b.enqueue(t, "coupon", "create", "--code", "RUSH", "--name", "rush", "--amount-type", "FIX", "--amount", "100",
				"--total", fmt.Sprint(total))
			workers := b.workers(t, 1)
			stop := make(chan struct{})
			res := rush(workers[0].Addr, "RUSH", 2000, 30000, stop)

			at := int(moment(rep, n) * total)
			until(t, 60*time.Second, "seats accepted before the crash", func() (bool, error) {
				return res.count(http.StatusAccepted) >= at, nil
			})
			o.Note = fmt.Sprintf("%d of %d accepted", at, total)
			up := time.Now()
			o.Ready = b.crash(t, workers)
			close(stop)
			res.wait()
			b.waitIdle(t, 120*time.Second)
			o.Done = time.Since(up)
			require.Positive(t, res.count(http.StatusServiceUnavailable), "no request met the outage")
			o.Lost = b.requireCouponsKept(t, redisClient(t, rs.URL), res, "RUSH", total)
			b.requireNoFailedJobs(t)
		})
	}
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// TestRedisLostDuringCouponRush kills Redis in the middle of a rush and starts
// it again empty, as a Redis without persistence comes back; the worker is not
// restarted. Requests meanwhile get 503; once Redis answers, the operator
// rebuilds the gate from Postgres (enqueue coupon load-redis) and the rush
// goes on. Every 202 is kept, nothing is oversold, and Redis ends in
// agreement with Postgres.
func TestRedisLostDuringCouponRush(t *testing.T) {
	t.Parallel()
	n := reps(t)
	for rep := range n {
		t.Run(fmt.Sprint(rep), func(t *testing.T) {
			o := outcome{Fault: "redis killed, back empty", Batch: "coupon rush", Rep: rep}
			defer func() { record(t, o) }()
			rs := testredis.Start(t)
			b := setup(t, "REDIS_URL="+rs.URL)
			const total = 1000
			b.enqueue(t, "coupon", "create", "--code", "RUSH", "--name", "rush", "--amount-type", "FIX", "--amount", "100",
				"--total", fmt.Sprint(total))
			workers := b.workers(t, 1)
			addr := workers[0].Addr
			stop := make(chan struct{})
			res := rush(addr, "RUSH", 2000, 30000, stop)

			at := int(moment(rep, n) * total)
			until(t, 60*time.Second, "seats accepted before the kill", func() (bool, error) {
				return res.count(http.StatusAccepted) >= at, nil
			})
			o.Note = fmt.Sprintf("%d of %d accepted", at, total)
			rs.Kill()
			seen := res.count(http.StatusServiceUnavailable)
			// Long enough for go-redis to give up dialing (after PoolSize
			// failed dials it probes only once a second).
			until(t, 10*time.Second, "requests answered 503 while Redis is away", func() (bool, error) {
				return res.count(http.StatusServiceUnavailable) > seen+200, nil
			})
			require.NoError(t, rs.Start())
			up := time.Now()
			// The worker's next requests reach the new, empty Redis: the
			// gate answers "not loaded" instead of a dial error.
			until(t, 30*time.Second, "the worker reaches Redis again", func() (bool, error) {
				code, body := post(addr, "/v1/coupons/RUSH/issue", `{"memberId": 999999}`)
				return code == http.StatusServiceUnavailable && bytes.Contains([]byte(body), []byte("not loaded")), nil
			})
			o.Ready = time.Since(up)
			b.enqueue(t, "coupon", "load-redis", "--code", "RUSH")
			close(stop)
			res.wait()
			b.waitIdle(t, 120*time.Second)
			o.Done = time.Since(up)
			o.Lost = b.requireCouponsKept(t, redisClient(t, rs.URL), res, "RUSH", total)
			b.requireNoFailedJobs(t)
		})
	}
}

func post(addr, path, body string) (int, string) {
	resp, err := httpClient.Post("http://"+addr+path, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var sb bytes.Buffer
	_, _ = sb.ReadFrom(resp.Body)
	return resp.StatusCode, sb.String()
}
