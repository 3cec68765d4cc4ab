package orderapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/partnersim"
	"github.com/tidemark/tidemark/orderapi"
)

// setup runs the simulated partner in-process with faults.
func setup(t *testing.T, faults partnersim.Faults) (*orderapi.Client, string) {
	t.Helper()
	pool, _ := testkit.Pool(t)
	srv, err := partnersim.New(context.Background(), pool, faults, testkit.Logger(t))
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return orderapi.New(hs.URL, 500*time.Millisecond, 4), hs.URL
}

// Every answer the partner can give, as the order_submit protocol sees it.
func TestClient(t *testing.T) {
	t.Parallel()
	api, base := setup(t, partnersim.Faults{FailNth: 2, FailAfterCommitNth: 3, HangAfterCommitNth: 4, RejectUsernames: []string{"banned"}})
	ctx := context.Background()
	req := func(u string) orderapi.OrderRequest {
		return orderapi.OrderRequest{Username: u, TotalPrice: 10000, AppliedYearMonth: "2025-02"}
	}

	o, err := api.Create(ctx, req("tester")) // POST #1: 201
	require.NoError(t, err)
	require.Positive(t, o.ID)
	require.Equal(t, "tester", o.Username)
	require.False(t, o.CreatedAt.IsZero())

	_, err = api.Create(ctx, req("a")) // #2: 500 before storing
	var se *orderapi.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusInternalServerError, se.Status)
	require.False(t, orderapi.Permanent(err))
	_, err = api.Lookup(ctx, "a", "2025-02")
	require.ErrorIs(t, err, orderapi.ErrNotFound)

	_, err = api.Create(ctx, req("b")) // #3: stored, then 500
	require.ErrorAs(t, err, &se)
	require.False(t, orderapi.Permanent(err))
	b, err := api.Lookup(ctx, "b", "2025-02")
	require.NoError(t, err)
	require.Equal(t, "b", b.Username)

	_, err = api.Create(ctx, req("c")) // #4: stored, then no answer
	require.Error(t, err)
	require.Contains(t, err.Error(), "no answer within 500ms")
	require.False(t, orderapi.Permanent(err))
	_, err = api.Lookup(ctx, "c", "2025-02")
	require.NoError(t, err)

	_, err = api.Create(ctx, req("tester")) // 409
	require.ErrorIs(t, err, orderapi.ErrConflict)
	got, err := api.Lookup(ctx, "tester", "2025-02")
	require.NoError(t, err)
	require.Equal(t, o.ID, got.ID)
	require.True(t, o.CreatedAt.Equal(got.CreatedAt))

	_, err = api.Create(ctx, req("banned")) // 400
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.Status)
	require.True(t, orderapi.Permanent(err))
	require.Contains(t, err.Error(), "banned is not allowed")

	all, err := api.List(ctx, 0, 2)
	require.NoError(t, err)
	require.Len(t, all, 2)
	rest, err := api.List(ctx, all[1].ID, 10)
	require.NoError(t, err)
	require.Len(t, rest, 1) // tester, b, c

	var stats partnersim.Stats
	getJSON(t, base+"/_stats", &stats)
	require.Positive(t, stats.AnswerMicros)
	stats.AnswerMicros = 0
	// Answered: the 6 GETs and 5 of the POSTs (#4 never answered).
	require.Equal(t, partnersim.Stats{Posts: 6, Created: 3, Conflicts: 1, BadRequests: 1, Injected: 3, Gets: 6, Orders: 3, Answered: 11}, stats)
}

// POSTs that arrive together are stored together (one statement), and the
// unique constraint still decides: of 40 concurrent POSTs for one user and
// month exactly one is created and 39 get a 409, while 40 concurrent POSTs
// for different users are all created, each with its own id.
func TestConcurrentPostsConflictOnlyOnTheSameOrder(t *testing.T) {
	t.Parallel()
	api, base := setup(t, partnersim.Faults{})
	post := func(users func(i int) string) ([]orderapi.Order, []error) {
		orders, errs := make([]orderapi.Order, 40), make([]error, 40)
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				orders[i], errs[i] = api.Create(context.Background(), orderapi.OrderRequest{Username: users(i), TotalPrice: 500, AppliedYearMonth: "2025-05"})
			}()
		}
		wg.Wait()
		return orders, errs
	}

	orders, errs := post(func(int) string { return "same" })
	var created []orderapi.Order
	for i, err := range errs {
		if err == nil {
			created = append(created, orders[i])
		} else {
			require.ErrorIs(t, err, orderapi.ErrConflict)
		}
	}
	require.Len(t, created, 1, "exactly one of 40 POSTs for one order is created")
	got, err := api.Lookup(context.Background(), "same", "2025-05")
	require.NoError(t, err)
	require.Equal(t, created[0].ID, got.ID)

	orders, errs = post(func(i int) string { return fmt.Sprintf("user%02d", i) })
	ids := map[int64]bool{}
	for i, err := range errs {
		require.NoError(t, err, "POST %d", i)
		require.Equal(t, fmt.Sprintf("user%02d", i), orders[i].Username)
		ids[orders[i].ID] = true
	}
	require.Len(t, ids, 40)
	var stats partnersim.Stats
	getJSON(t, base+"/_stats", &stats)
	require.Equal(t, int64(41), stats.Orders)
	require.Equal(t, int64(39), stats.Conflicts)
}

// latency is the time to answer: no answer comes sooner, and the work is
// done meanwhile (the order is stored before the answer is sent).
func TestLatencyIsTheTimeToAnswer(t *testing.T) {
	t.Parallel()
	api, base := setup(t, partnersim.Faults{Latency: partnersim.Duration(150 * time.Millisecond)})
	start := time.Now()
	o, err := api.Create(context.Background(), orderapi.OrderRequest{Username: "slow", TotalPrice: 1, AppliedYearMonth: "2025-06"})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	require.Less(t, o.CreatedAt.Sub(start), 150*time.Millisecond, "the order was stored while the answer waited")
	var stats partnersim.Stats
	getJSON(t, base+"/_stats", &stats)
	require.Equal(t, int64(1), stats.Answered)
	require.GreaterOrEqual(t, stats.AnswerMicros, int64(150_000))
}

// Faults change at runtime; bad fault sets and bad bodies are 400s.
func TestFaultsAndBadBodies(t *testing.T) {
	t.Parallel()
	api, base := setup(t, partnersim.Faults{})
	for _, c := range []struct{ body, want string }{
		{`{"errorRate":2}`, "errorRate must be in 0..1"},
		{`{"failNth":-1}`, "must be 0 (off) or positive"},
		{`{"latency":"soon"}`, "want a duration"},
		{`{"nope":1}`, "unknown field"},
	} {
		status, body := do(t, http.MethodPut, base+"/_faults", c.body)
		require.Equal(t, http.StatusBadRequest, status, c.body)
		require.Contains(t, body, c.want)
	}
	for _, body := range []string{`{`, `{"totalPrice":1,"appliedYearMonth":"2025-02"}`, `{"username":"a","totalPrice":0,"appliedYearMonth":"2025-02"}`,
		`{"username":"a","totalPrice":1,"appliedYearMonth":"2025-13"}`} {
		status, _ := do(t, http.MethodPost, base+"/orders", body)
		require.Equal(t, http.StatusBadRequest, status, body)
	}

	// errorRate 1: every POST fails before storing; then back to none.
	status, _ := do(t, http.MethodPut, base+"/_faults", `{"errorRate":1,"seed":7,"latency":"1ms"}`)
	require.Equal(t, http.StatusOK, status)
	_, err := api.Create(context.Background(), orderapi.OrderRequest{Username: "x", TotalPrice: 1, AppliedYearMonth: "2025-02"})
	var se *orderapi.StatusError
	require.True(t, errors.As(err, &se) && se.Status == http.StatusInternalServerError, "%v", err)
	status, _ = do(t, http.MethodPut, base+"/_faults", `{}`)
	require.Equal(t, http.StatusOK, status)
	_, err = api.Create(context.Background(), orderapi.OrderRequest{Username: "x", TotalPrice: 1, AppliedYearMonth: "2025-02"})
	require.NoError(t, err)
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, url string, dst any) {
	t.Helper()
	status, body := do(t, http.MethodGet, url, "")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), dst))
}

// An error names the partner's host but not the credentials in its URL nor
// the values of a query, whether the call failed or the partner's answer
// quoted the URL.
func TestErrorsHideTheURLsSecrets(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx := context.Background()

	api := orderapi.New("http://order:S3cretPW@"+closed, 500*time.Millisecond, 1)
	_, err = api.Create(ctx, orderapi.OrderRequest{Username: "tester", TotalPrice: 1, AppliedYearMonth: "2025-02"})
	require.ErrorContains(t, err, `Post "http://order:xxxxx@`+closed+`/orders"`)
	_, err = api.Lookup(ctx, "tester", "2025-02")
	require.ErrorContains(t, err, `Get "http://order:xxxxx@`+closed+`/orders?appliedYearMonth=xxxxx&username=xxxxx"`)
	require.NotContains(t, err.Error(), "S3cret")

	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error":"refused http://%s%s?api_key=S3cretKey"}`, r.Host, r.URL.Path)
	}))
	t.Cleanup(hs.Close)
	_, err = orderapi.New(hs.URL, time.Second, 1).Create(ctx, orderapi.OrderRequest{Username: "tester", TotalPrice: 1, AppliedYearMonth: "2025-02"})
	require.ErrorContains(t, err, "refused "+hs.URL+"/orders?api_key=xxxxx")
	require.NotContains(t, err.Error(), "S3cret")
}

// A 429 or a 503 is "overloaded" with its Retry-After, in seconds or as an
// HTTP date; a 500 or no answer is "failing"; a 404, 409 or 400 is neither.
func TestOverloadedAndFailing(t *testing.T) {
	t.Parallel()
	var status, retryAfter string
	var mu sync.Mutex
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		code := 0
		_, _ = fmt.Sscan(status, &code)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"error":"busy"}`)
	}))
	t.Cleanup(hs.Close)
	api := orderapi.New(hs.URL, time.Second, 2)
	ctx := context.Background()
	call := func(s, ra string) error {
		mu.Lock()
		status, retryAfter = s, ra
		mu.Unlock()
		_, err := api.Create(ctx, orderapi.OrderRequest{Username: "u", TotalPrice: 1, AppliedYearMonth: "2025-02"})
		return err
	}
	err := call("429", "3")
	ra, ok := orderapi.Overloaded(err)
	require.True(t, ok)
	require.Equal(t, 3*time.Second, ra)
	require.False(t, orderapi.Failing(ctx, err))
	require.False(t, orderapi.Permanent(err))

	err = call("503", time.Now().Add(10*time.Second).UTC().Format(http.TimeFormat))
	ra, ok = orderapi.Overloaded(err)
	require.True(t, ok)
	require.InDelta(t, 10*time.Second, ra, float64(1500*time.Millisecond))
	require.False(t, orderapi.Failing(ctx, err))

	err = call("503", "soon")
	ra, ok = orderapi.Overloaded(err)
	require.True(t, ok)
	require.Zero(t, ra, "an unreadable Retry-After is none")

	err = call("500", "")
	_, ok = orderapi.Overloaded(err)
	require.False(t, ok)
	require.True(t, orderapi.Failing(ctx, err))
	require.False(t, orderapi.Failing(ctx, call("409", "")))
	require.False(t, orderapi.Failing(ctx, call("400", "")))

	dead := orderapi.New("http://127.0.0.1:1", time.Second, 1)
	_, err = dead.Lookup(ctx, "u", "2025-02")
	require.True(t, orderapi.Failing(ctx, err), "a refused connection: %v", err)
}

// The simulated partner's rate limit answers 429 past its calls a second,
// and its maintenance window 503 with the time left as Retry-After.
func TestPartnerRateLimitAndMaintenance(t *testing.T) {
	t.Parallel()
	api, _ := setup(t, partnersim.Faults{RateLimit: 5})
	ctx := context.Background()
	var tooMany int
	for i := range 8 {
		_, err := api.Lookup(ctx, fmt.Sprintf("u%d", i), "2025-02")
		if ra, ok := orderapi.Overloaded(err); ok {
			tooMany++
			require.Equal(t, time.Second, ra)
			continue
		}
		require.ErrorIs(t, err, orderapi.ErrNotFound)
	}
	require.Equal(t, 3, tooMany, "5 a second let through")

	api, _ = setup(t, partnersim.Faults{Maintenance: partnersim.Duration(time.Hour)})
	_, err := api.Create(ctx, orderapi.OrderRequest{Username: "u", TotalPrice: 1, AppliedYearMonth: "2025-02"})
	var se *orderapi.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusServiceUnavailable, se.Status)
	require.Equal(t, time.Hour, se.RetryAfter)
}
