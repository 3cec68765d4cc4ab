package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

// Each mutating request of an operator is a row of operator_action: who,
// what, for what, the answer; refused callers leave none.
func TestOperatorRequestsAreRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	body := `{"therapyUserId":1,"yearMonth":"2026-11"}`
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Bearer " + viewerToken} {
		status, _ := b.do(t, "POST", "/v1/therapy-statistics/recover", auth, body)
		require.Contains(t, []int{401, 403}, status)
	}
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM operator_action`), "a refused caller is not an operator's action")

	status, out := b.do(t, "POST", "/v1/therapy-statistics/recover", "Bearer "+token, body)
	require.Equal(t, 202, status, out)
	status, _ = b.do(t, "POST", "/v1/therapy-statistics/recover", "Bearer "+token, `{"therapyUserId":99,"yearMonth":"2026-11"}`)
	require.Equal(t, 404, status)

	acts, err := b.store.OperatorActions(b.ctx, 10)
	require.NoError(t, err)
	require.Len(t, acts, 2)
	bad, good := acts[0], acts[1]
	require.Equal(t, "recover_therapy_statistics", good.Action)
	require.Equal(t, store.ViaAPI, good.Via)
	require.Equal(t, "admin", good.By)
	require.Equal(t, "127.0.0.1", good.Addr)
	require.Equal(t, 202, good.Status)
	require.JSONEq(t, body, string(good.Filter))
	require.EqualValues(t, 1, good.Matched)
	require.EqualValues(t, 1, good.Acted)
	require.False(t, good.FinishedAt.IsZero())
	require.Equal(t, 404, bad.Status)
	require.EqualValues(t, 0, bad.Acted, "a refused request changed nothing")

	// A body jsonb could not keep as it is (a NUL, a lone surrogate) is
	// recorded all the same, its numbers exact.
	status, _ = b.do(t, "POST", "/v1/ledger/reprocess", "Bearer "+token, `{"ledgerIds":[9007199254740993],"on":"2026\u0000-\udc00"}`)
	require.Equal(t, 400, status)
	acts, err = b.store.OperatorActions(b.ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "reprocess_ledger", acts[0].Action)
	require.Equal(t, 400, acts[0].Status)
	require.JSONEq(t, `{"ledgerIds":[9007199254740993],"on":"2026\ufffd-\ufffd"}`, string(acts[0].Filter))

	// A request lists its targets: each counts.
	status, _ = b.do(t, "POST", "/v1/ledger/reprocess", "Bearer "+token, `{"ledgerIds":[1,2,3],"on":"2026-12-01"}`)
	require.Equal(t, 404, status)
	acts, err = b.store.OperatorActions(b.ctx, 1)
	require.NoError(t, err)
	require.EqualValues(t, 3, acts[0].Matched)
	require.EqualValues(t, 0, acts[0].Acted)
	// A number jsonb cannot hold is kept as its text.
	status, _ = b.do(t, "POST", "/v1/order-requests", "Bearer "+token, `{"username":"x","totalPrice":1e1000000,"appliedYearMonth":"2025-02"}`)
	require.Equal(t, 400, status)
	acts, err = b.store.OperatorActions(b.ctx, 1)
	require.NoError(t, err)
	require.JSONEq(t, `{"username":"x","totalPrice":"1e1000000","appliedYearMonth":"2025-02"}`, string(acts[0].Filter))
	// A name given twice (in any case) is refused before anything, so no
	// record can show a target other than the one acted on.
	before := testkit.Count(t, b.pool, `SELECT count(*) FROM operator_action`)
	status, out = b.do(t, "POST", "/v1/order-requests", "Bearer "+token, `{"username":"alice","USERNAME":"mallory","totalPrice":1,"appliedYearMonth":"2025-02"}`)
	require.Equal(t, 400, status)
	require.Equal(t, "USERNAME", out["field"])
	require.Equal(t, before, testkit.Count(t, b.pool, `SELECT count(*) FROM operator_action`))
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM order_request`))
}

// Past 20 wrong credentials a minute from one address, that address gets
// 429 with Retry-After for that kind of credentials, the right ones
// included; members are not locked out by wrong operator tokens.
func TestFailedSignInsThrottledPerAddressAndKind(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	get := func(auth string) (int, http.Header) {
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/v1/order-requests/1", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for i := range 20 {
		status, _ := get("Bearer wrong-token-" + strconv.Itoa(i) + "-0123456789")
		require.Equal(t, http.StatusUnauthorized, status, i)
	}
	status, h := get("Bearer wrong-token-0123456789")
	require.Equal(t, http.StatusTooManyRequests, status)
	wait, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, wait >= 1 && wait <= 60, wait)
	status, _ = get("Bearer " + viewerToken)
	require.Equal(t, http.StatusTooManyRequests, status, "while throttled, right tokens are not checked either")

	status, out := b.do(t, "POST", "/v1/coupons/NONE/issue", memberBearer(t, 1), "")
	require.Equal(t, http.StatusNotFound, status, "a member from that address is not throttled by operator failures: %v", out)
	// Where a token may be an operator's or a member's, a throttled address
	// learns nothing from the path it takes.
	status, _ = b.do(t, "GET", "/v1/therapy-statistics?yearMonth=2026-11", memberBearer(t, 1), "")
	require.Equal(t, http.StatusTooManyRequests, status)
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	a := &httpapi.ClientAddr{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, c := range []struct{ remote, xff, want string }{
		{"192.0.2.7:5000", "", "192.0.2.7"},
		{"192.0.2.7:5000", "198.51.100.1", "192.0.2.7"}, // not a trusted proxy: its header is ignored
		{"10.0.0.5:5000", "198.51.100.1", "198.51.100.1"},
		{"10.0.0.5:5000", "203.0.113.9, 198.51.100.1, 10.0.0.9", "198.51.100.1"}, // the nearest untrusted hop
		{"10.0.0.5:5000", "", "10.0.0.5"},
		{"10.0.0.5:5000", "garbage", `forwarded "garbage"`},
		{"10.0.0.5:5000", "198.51.100.1, 203.0.113.7:51234", "203.0.113.7"},
		{"10.0.0.5:5000", "[2001:db8::7]:443", "2001:db8::/64"},
		{"10.0.0.5:5000", "[2001:db8::7]", "2001:db8::/64"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "", "192.0.2.7"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		require.Equal(t, c.want, a.Of(r), c)
	}
}

// /metrics without METRICS_TOKEN is open; with it, only that bearer token
// passes, and wrong ones count as failed sign-ins.
func TestMetricsGuard(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("metrics")) })
	serve := func(c *httpapi.Callers, auth string) int {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		c.Metrics(ok).ServeHTTP(w, r)
		return w.Code
	}
	logger := testkit.Logger(t)
	require.Equal(t, 200, serve(&httpapi.Callers{Logger: logger}, ""))
	c := &httpapi.Callers{Logger: logger, MetricsToken: "metrics-token-0123456789"}
	require.Equal(t, 401, serve(c, ""))
	require.Equal(t, 401, serve(c, "Bearer metrics-token-012345678"))
	require.Equal(t, 401, serve(c, "Basic "+strings.Repeat("x", 8)))
	require.Equal(t, 200, serve(c, "Bearer metrics-token-0123456789"))
	require.Equal(t, 200, serve(c, "bearer metrics-token-0123456789"), "the scheme is case-insensitive")
}

// Every JSON answer is JSON even for a refused caller.
func TestRefusalsAreJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	resp, err := http.Post(b.srv.URL+"/v1/ledger/reprocess", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, "Authorization", out["field"])
}

// An operator's token shaped like a JWT is still an operator's on an
// endpoint members and operators share.
func TestOperatorTokenShapedLikeAJWT(t *testing.T) {
	t.Parallel()
	var ops auth.Operators
	require.NoError(t, ops.AddToken("ann", auth.RoleViewer, "ann.token.0123456789"))
	c := &httpapi.Callers{Operators: &ops, Members: testCallers(t).Members, Logger: testkit.Logger(t)}
	h := c.MemberOrViewer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := httpapi.CallerOf(r.Context())
		if caller.Operator != nil {
			_, _ = w.Write([]byte("operator " + caller.Operator.Name))
			return
		}
		_, _ = w.Write([]byte("member " + strconv.FormatInt(caller.Member, 10)))
	}))
	for authz, want := range map[string]string{
		"Bearer ann.token.0123456789": "operator ann",
		memberBearer(t, 9):            "member 9",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", authz)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, want, w.Body.String())
	}
}
