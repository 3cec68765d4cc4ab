package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

type couponBundle struct {
	pool   *pgxpool.Pool
	store  *store.Store
	gate   *coupongate.Gate
	deps   jobs.Deps
	client *jobs.Client
	url    string
	http   *http.Client
}

// setupCoupons starts the API on a fresh database and Redis prefix. With
// work, a River client works the persist jobs in-process.
func setupCoupons(t *testing.T, work bool) *couponBundle {
	t.Helper()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	gate, _, _ := testredis.Gate(t)
	st := store.New(pool)
	logger := testkit.Logger(t)
	deps := jobs.Deps{Store: st, TZ: time.UTC, Logger: logger, Gate: gate, ReconcileGrace: time.Millisecond}
	cc := jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second}
	if work {
		cc.Queues = map[string]int{"default": 10, "member": 10}
		cc.FetchCooldown, cc.FetchPollInterval = 20*time.Millisecond, 50*time.Millisecond
	}
	client, err := jobs.NewClient(pool, cc, deps)
	require.NoError(t, err)
	if work {
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = client.Stop(sctx)
		})
	}
	// Three requests a minute per member: enough for every test here but
	// the rate limit's own.
	api := &httpapi.Server{Store: st, River: client, TZ: time.UTC, Logger: logger, Gate: gate, Callers: testCallers(t),
		MemberLimit: coupongate.Limit{N: 3, Period: time.Minute}}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	t.Cleanup(tr.CloseIdleConnections)
	return &couponBundle{pool: pool, store: st, gate: gate, deps: deps, client: client, url: srv.URL,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (b *couponBundle) createCoupon(t *testing.T, code string, total int, status string, expires *time.Time) store.Coupon {
	t.Helper()
	ctx := context.Background()
	c, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: code, Name: "first come " + code, AmountType: store.AmountFix,
		Amount: 1000, TotalQuantity: total, Status: status, ExpiresAt: expires})
	require.NoError(t, err)
	if status == store.CouponActive {
		_, err = b.gate.Load(ctx, code, int64(total), nil)
		require.NoError(t, err)
	}
	return c
}

// issue asks for coupon code as member (no Authorization when member is 0),
// with body (none when empty).
func (b *couponBundle) issue(t *testing.T, member int64, code, body string) (int, string) {
	t.Helper()
	resp := b.post(t, member, code, body)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (b *couponBundle) post(t *testing.T, member int64, code, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url+"/v1/coupons/"+code+"/issue", strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if member != 0 {
		req.Header.Set("Authorization", memberBearer(t, member))
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	return resp
}

// waitNoOutstanding polls until River has no job left to run.
func waitNoOutstanding(t *testing.T, st *store.Store, within time.Duration) {
	t.Helper()
	testkit.WaitFor(t, within, "no job outstanding", func() (bool, error) {
		n, err := st.OutstandingJobs(context.Background())
		if err == nil && n > 0 {
			err = fmt.Errorf("%d job(s) outstanding", n)
		}
		return n == 0, err
	})
}

func countRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	return int(testkit.Count(t, pool, sql, args...))
}

// 2,000 concurrent requests (1,600 members, 400 of them asking twice) for a
// coupon of 100: exactly 100 accepted and persisted, no oversell, everyone
// else 410 (sold out) or 409 (already issued).
func TestIssueRushExactlyTotal(t *testing.T) {
	t.Parallel()
	b := setupCoupons(t, true)
	ctx := context.Background()
	c := b.createCoupon(t, "RUSH100", 100, store.CouponActive, nil)

	const requests = 2000
	codes := make([]int, requests)
	bearers := make([]string, 1600)
	for i := range bearers {
		bearers[i] = memberBearer(t, int64(i+1))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < requests; i++ {
		bearer := bearers[i%1600]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := http.NewRequest(http.MethodPost, b.url+"/v1/coupons/RUSH100/issue", nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Authorization", bearer)
			resp, err := b.http.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()

	byStatus := map[int]int{}
	for _, s := range codes {
		byStatus[s]++
	}
	require.Equal(t, 100, byStatus[http.StatusAccepted], "statuses: %v", byStatus)
	require.Equal(t, requests, byStatus[http.StatusAccepted]+byStatus[http.StatusGone]+byStatus[http.StatusConflict], "statuses: %v", byStatus)

	waitNoOutstanding(t, b.store, 60*time.Second)
	require.Equal(t, 100, countRows(t, b.pool, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	require.Equal(t, 100, countRows(t, b.pool, `SELECT count(DISTINCT member_id) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	st, err := b.gate.State(ctx, "RUSH100")
	require.NoError(t, err)
	require.EqualValues(t, 0, st.Stock)
	require.Len(t, st.Members, 100)
	require.Equal(t, 100, countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE kind = 'coupon_issue_persist' AND state = 'completed'`))

	// The safety net agrees, and re-syncs issued_quantity from COUNT(*).
	rep, err := jobs.ReconcileCoupon(ctx, b.deps, "RUSH100", false)
	require.NoError(t, err)
	require.Zero(t, rep.RolledBack)
	require.Zero(t, rep.AddedBack)
	require.Equal(t, 0, rep.IssuedQtyWas)
	require.Equal(t, 100, rep.IssuedQtyNow)
}

// Every bad request is refused with the right status and changes nothing:
// no seat taken, no job inserted.
func TestIssueBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	b := setupCoupons(t, false)
	ctx := context.Background()
	b.createCoupon(t, "GOOD", 5, store.CouponActive, nil)
	b.createCoupon(t, "OFF", 5, store.CouponInactive, nil)
	past := time.Now().Add(-time.Hour)
	b.createCoupon(t, "OLD", 5, store.CouponActive, &past)
	_, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: "NOREDIS", Name: "n", AmountType: "FIX", Amount: 1, TotalQuantity: 5, Status: "ACTIVE"})
	require.NoError(t, err)

	cases := []struct {
		name          string
		member        int64
		auth          string
		code, body    string
		status        int
		field, header string
	}{
		{"no token", 0, "", "GOOD", ``, 401, "Authorization", `Bearer realm="tidemark", error="invalid_token"`},
		{"an operator's token", 0, "Bearer " + token, "GOOD", ``, 401, "Authorization", `error="invalid_token"`},
		{"a forged token", 0, memberBearer(t, 42) + "x", "GOOD", ``, 401, "Authorization", `error="invalid_token"`},
		{"another member", 42, "", "GOOD", `{"memberId":43}`, 403, "memberId", ""},
		{"malformed", 42, "", "GOOD", `{"memberId":`, 400, "body", ""},
		{"string member", 42, "", "GOOD", `{"memberId":"42"}`, 400, "memberId", ""},
		{"fraction member", 42, "", "GOOD", `{"memberId":4.2}`, 400, "memberId", ""},
		{"unknown field", 42, "", "GOOD", `{"memberId":42,"admin":true}`, 400, "admin", ""},
		{"two objects", 42, "", "GOOD", `{"memberId":42}{"memberId":43}`, 400, "body", ""},
		{"unknown coupon", 42, "", "NOPE", ``, 404, "code", ""},
		{"bad code", 42, "", "no%20pe", ``, 404, "code", ""},
		{"inactive coupon", 42, "", "OFF", ``, 404, "code", ""},
		{"expired coupon", 42, "", "OLD", ``, 404, "code", ""},
		{"gate not loaded", 42, "", "NOREDIS", ``, 503, "", ""},
	}
	for i, tc := range cases {
		req, err := http.NewRequest(http.MethodPost, b.url+"/v1/coupons/"+tc.code+"/issue", strings.NewReader(tc.body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		switch {
		case tc.auth != "":
			req.Header.Set("Authorization", tc.auth)
		case tc.member != 0: // a member of its own, so no case spends another's allowance
			req.Header.Set("Authorization", memberBearer(t, int64(100+i)))
		}
		resp, err := b.http.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.name, body)
		if tc.field != "" {
			require.Contains(t, string(body), `"field":"`+tc.field+`"`, tc.name)
		}
		if tc.header != "" {
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), tc.header, tc.name)
		}
	}
	for _, ct := range []string{"text/plain", "application/jsonfoo", ""} {
		req, err := http.NewRequest(http.MethodPost, b.url+"/v1/coupons/GOOD/issue", strings.NewReader(`{"memberId":42}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", memberBearer(t, 42))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := b.http.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, ct)
	}
	big := `{"memberId":42,"pad":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`
	status, _ := b.issue(t, 42, "GOOD", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, status)

	require.Equal(t, 0, countRows(t, b.pool, `SELECT count(*) FROM river_job`))
	st, err := b.gate.State(ctx, "GOOD")
	require.NoError(t, err)
	require.EqualValues(t, 5, st.Stock)
	require.Empty(t, st.Members)

	// And the good path, for contrast: 202 for the token's member, then 409
	// for the same member, with or without naming themself.
	status, body := b.issue(t, 42, "GOOD", ``)
	require.Equal(t, http.StatusAccepted, status, body)
	require.JSONEq(t, `{"couponCode":"GOOD","memberId":42,"status":"ACCEPTED"}`, body)
	job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), &jobs.CouponIssuePersistArgs{}, nil)
	require.Equal(t, "GOOD", job.Args.CouponCode)
	require.EqualValues(t, 42, job.Args.MemberID)
	status, body = b.issue(t, 42, "GOOD", `{"memberId":42}`)
	require.Equal(t, http.StatusConflict, status)
	require.NotContains(t, body, "42", "the answer is about the caller, and names no member")
	require.Equal(t, 1, countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE kind = 'coupon_issue_persist'`))
}

// When the persist job cannot be inserted, the seat is given back before the
// 5xx answer (layer 1).
func TestIssueUndoneWhenJobInsertFails(t *testing.T) {
	t.Parallel()
	b := setupCoupons(t, false)
	ctx := context.Background()
	b.createCoupon(t, "FRAGILE", 3, store.CouponActive, nil)
	status, _ := b.issue(t, 1, "FRAGILE", ``) // warms the coupon cache
	require.Equal(t, http.StatusAccepted, status)

	_, err := b.pool.Exec(ctx, `ALTER TABLE river_job RENAME TO river_job_away`)
	require.NoError(t, err)
	status, body := b.issue(t, 2, "FRAGILE", ``)
	require.Equal(t, http.StatusServiceUnavailable, status, body)

	st, err := b.gate.State(ctx, "FRAGILE")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Stock, "the seat taken by member 2 is back")
	require.ElementsMatch(t, []int64{1}, st.Members)

	_, err = b.pool.Exec(ctx, `ALTER TABLE river_job_away RENAME TO river_job`)
	require.NoError(t, err)
	status, _ = b.issue(t, 2, "FRAGILE", ``)
	require.Equal(t, http.StatusAccepted, status, "member 2 can try again")
}

// A member past their allowance gets 429 with Retry-After and their seat is
// untouched; another member is not held back by them.
func TestIssueRateLimitedPerMember(t *testing.T) {
	t.Parallel()
	b := setupCoupons(t, false)
	ctx := context.Background()
	b.createCoupon(t, "LIMITED", 10, store.CouponActive, nil)
	for i, want := range []int{http.StatusAccepted, http.StatusConflict, http.StatusConflict} {
		status, body := b.issue(t, 7, "LIMITED", ``)
		require.Equal(t, want, status, "request %d: %s", i+1, body)
	}
	resp := b.post(t, 7, "LIMITED", ``)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s", body)
	wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, wait >= 1 && wait <= 60, "Retry-After %d", wait)
	// Bounded before the coupon is even looked up: unknown codes count too.
	status, _ := b.issue(t, 7, "NO-SUCH-COUPON", ``)
	require.Equal(t, http.StatusTooManyRequests, status)

	st, err := b.gate.State(ctx, "LIMITED")
	require.NoError(t, err)
	require.EqualValues(t, 9, st.Stock, "the refused requests took no seat")
	require.ElementsMatch(t, []int64{7}, st.Members)
	require.Equal(t, 1, countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE kind = 'coupon_issue_persist'`))

	status, _ = b.issue(t, 8, "LIMITED", ``)
	require.Equal(t, http.StatusAccepted, status, "another member has an allowance of their own")
}
