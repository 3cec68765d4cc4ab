package main_test

// The worker's HTTP surface, probed as an attacker would: each probe that
// once got through, with the answer it gets now.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/store"
)

const secMemberSecret = "probe-member-secret-of-at-least-32-bytes"

type secBundle struct {
	pool           *pgxpool.Pool
	base           string
	worker         *testbin.Proc
	admin, viewer  string
	coupon         string
	store          *store.Store
	gate           *coupongate.Gate
	couponID       int64
	operatorsFileP string
	// base makes this test's member ids its own: the coupon rate limit is
	// kept in the shared Redis, across tests and runs.
	members int64
}

// m is this test's member i.
func (b *secBundle) m(i int64) int64 { return b.members + i }

// setupSecurity starts a worker with an operator (admin), a viewer (vera),
// members signed with secMemberSecret and five coupon requests a minute per
// member, and an ACTIVE 5-seat coupon loaded in its gate.
func setupSecurity(t *testing.T) *secBundle {
	t.Helper()
	ctx := context.Background()
	pool, dbURL := testkit.Pool(t)
	b := &secBundle{pool: pool, store: store.New(pool), admin: "admin-probe-token-0123456789", viewer: "viewer-probe-token-0123456789"}
	b.operatorsFileP = operatorsFile(t, "vera:viewer:"+sha256Hex(b.viewer))
	b.worker = testbin.StartWorker(t, "DATABASE_URL="+dbURL, "REDIS_URL="+testredis.URL(), "PERIODIC_JOBS=false",
		"ADMIN_TOKEN="+b.admin, "OPERATORS_FILE="+b.operatorsFileP, "MEMBER_JWT_SECRET="+secMemberSecret,
		"COUPON_RATE_LIMIT=5/m")
	b.base = "http://" + b.worker.Addr
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	b.coupon = "PROBE" + hex.EncodeToString(rnd)
	cp, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: b.coupon, Name: "probe", AmountType: "FIX", Amount: 1,
		TotalQuantity: 5, Status: store.CouponActive})
	require.NoError(t, err)
	b.couponID = cp.ID
	b.members = time.Now().UnixNano()%1_000_000_000*1000 + 1_000_000
	rdb := testredis.Client(t)
	b.gate = coupongate.New(rdb, "")
	t.Cleanup(func() {
		rdb.Del(context.Background(), b.gate.StockKey(b.coupon), b.gate.IssuedKey(b.coupon))
	})
	_, err = b.gate.Load(ctx, b.coupon, 5, nil)
	require.NoError(t, err)
	return b
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *secBundle) do(t *testing.T, method, path, authz, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	require.NoError(t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header, string(out)}
}

func member(t *testing.T, id int64) string {
	t.Helper()
	tok, err := auth.SignMember([]byte(secMemberSecret), id, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	return "Bearer " + tok
}

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return "Bearer " + s
}

func (b *secBundle) seats(t *testing.T) (stock int64, members []int64) {
	t.Helper()
	st, err := b.gate.State(context.Background(), b.coupon)
	require.NoError(t, err)
	return st.Stock, st.Members
}

// Probe: a 5-seat coupon drained in 5 requests under invented member ids,
// with no credential or with tokens an attacker can make. Now: 401 for every
// one of them, not a seat taken; a member asks only for themself.
func TestProbeCouponNeedsTheMembersOwnToken(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	path := "/v1/coupons/" + b.coupon + "/issue"
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	now := time.Now()
	good := jwt.MapClaims{"sub": "11", "exp": now.Add(time.Hour).Unix()}
	for name, authz := range map[string]string{
		"none":           "",
		"forged":         signed(t, jwt.SigningMethodHS256, []byte("attacker-secret-of-at-least-32-bytes!"), good),
		"expired":        signed(t, jwt.SigningMethodHS256, []byte(secMemberSecret), jwt.MapClaims{"sub": "11", "exp": now.Add(-time.Hour).Unix()}),
		"no exp":         signed(t, jwt.SigningMethodHS256, []byte(secMemberSecret), jwt.MapClaims{"sub": "11"}),
		"alg none":       signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),
		"HS512":          signed(t, jwt.SigningMethodHS512, []byte(secMemberSecret), good),
		"RS256":          signed(t, jwt.SigningMethodRS256, rsaKey, good),
		"operator token": "Bearer " + b.admin,
		"basic":          basic("11", "x"),
		"tampered":       member(t, b.m(11))[:len(member(t, b.m(11)))-3] + "abc",
	} {
		tries := 1 // each wrong token counts towards the address's throttle
		if authz == "" {
			tries = 5 // the probe: five requests, five invented members
		}
		for i := range tries {
			a := b.do(t, http.MethodPost, path, authz, "application/json", fmt.Sprintf(`{"memberId":%d}`, 900+i))
			require.Equal(t, http.StatusUnauthorized, a.status, "%s: %s", name, a.body)
			require.Contains(t, a.header.Get("WWW-Authenticate"), `Bearer realm="tidemark", error="invalid_token"`, name)
		}
	}
	stock, members := b.seats(t)
	require.EqualValues(t, 5, stock, "not a seat taken")
	require.Empty(t, members)

	// A member names another in the body: 403. Themself, or nobody: theirs.
	m1, m2 := b.m(1), b.m(2)
	a := b.do(t, http.MethodPost, path, member(t, m1), "application/json", fmt.Sprintf(`{"memberId":%d}`, m2))
	require.Equal(t, http.StatusForbidden, a.status, a.body)
	a = b.do(t, http.MethodPost, path, member(t, m1), "application/json", fmt.Sprintf(`{"memberId":%d}`, m1))
	require.Equal(t, http.StatusAccepted, a.status, a.body)
	a = b.do(t, http.MethodPost, path, member(t, m2), "", "")
	require.Equal(t, http.StatusAccepted, a.status, a.body)
	require.JSONEq(t, fmt.Sprintf(`{"couponCode":%q,"memberId":%d,"status":"ACCEPTED"}`, b.coupon, m2), a.body)
	// Whether member 1 holds the coupon is nothing member 2 can ask.
	a = b.do(t, http.MethodPost, path, member(t, m2), "application/json", fmt.Sprintf(`{"memberId":%d}`, m1))
	require.Equal(t, http.StatusForbidden, a.status)
	a = b.do(t, http.MethodPost, path, member(t, m1), "", "")
	require.Equal(t, http.StatusConflict, a.status)
	require.NotContains(t, a.body, `"memberId"`)
	_, members = b.seats(t)
	require.ElementsMatch(t, []int64{m1, m2}, members)

	// Past five requests a minute a member gets 429, the seats untouched.
	for i := range 3 {
		a = b.do(t, http.MethodPost, path, member(t, m1), "", "")
		require.Equal(t, http.StatusConflict, a.status, i)
	}
	a = b.do(t, http.MethodPost, path, member(t, m1), "", "")
	require.Equal(t, http.StatusTooManyRequests, a.status, a.body)
	require.NotEmpty(t, a.header.Get("Retry-After"))
	stock, _ = b.seats(t)
	require.EqualValues(t, 3, stock)
	// The member's failed sign-ins were logged without the token.
	require.Contains(t, b.worker.Output(), `msg="http: authentication failed" credentials=member addr=127.0.0.1 method=POST path=`+path)
	require.NotContains(t, b.worker.Output(), "attacker-secret")
}

// Probe: any member's statistics read with a sequential id and no
// credential. Now: a member reads their own, another's is 403 whether or
// not it exists, an operator of either role reads any.
func TestProbeStatisticsAreTheMembersOwn(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE')`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO therapy_statistics (therapy_user_id, year, month, perform_count, completed_count,
		total_duration_seconds, active_days, aggregated_at) VALUES (1, 2026, 11, 3, 2, 900, 2, now()), (2, 2026, 11, 9, 9, 90, 1, now())`)
	require.NoError(t, err)
	q := func(user string) string { return "/v1/therapy-statistics?yearMonth=2026-11&therapyUserId=" + user }
	for _, c := range []struct {
		authz, user string
		status      int
	}{
		{"", "1", 401}, {"", "2", 401},
		{member(t, 1), "1", 200}, {member(t, 1), "", 200},
		{member(t, 1), "2", 403}, {member(t, 1), "3", 403}, {member(t, 1), "20", 403},
		{"Bearer " + b.viewer, "2", 200}, {basic("vera", b.viewer), "2", 200}, {"Bearer " + b.admin, "2", 200},
		{basic("vera", b.admin), "2", 401},
	} {
		a := b.do(t, http.MethodGet, q(c.user), c.authz, "", "")
		require.Equal(t, c.status, a.status, "%v: %s", c, a.body)
		if c.status != 200 {
			require.NotContains(t, a.body, "performCount")
		}
	}
	a := b.do(t, http.MethodGet, q(""), member(t, 1), "", "")
	var stats map[string]any
	require.NoError(t, json.Unmarshal([]byte(a.body), &stats))
	require.Equal(t, float64(1), stats["therapyUserId"])
	require.Equal(t, float64(3), stats["performCount"])
}

// Probe: an order request's row (username, price, the partner's URL in
// lastError) read with no credential. Now: operators only; a viewer reads,
// cannot create; an operator's creation is recorded with their name.
func TestProbeOperatorRolesAndTheirRecord(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	ctx := context.Background()
	var id int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO order_request (username, total_price, applied_year_month)
		VALUES ('kim', 5000, '2026-11') RETURNING id`).Scan(&id))
	path := "/v1/order-requests/" + strconv.FormatInt(id, 10)
	for _, authz := range []string{"", member(t, 1), "Bearer " + b.viewer + "x", basic("admin", b.viewer)} {
		a := b.do(t, http.MethodGet, path, authz, "", "")
		require.Equal(t, http.StatusUnauthorized, a.status, authz)
		require.NotContains(t, a.body, "kim")
	}
	a := b.do(t, http.MethodGet, path, "Bearer "+b.viewer, "", "")
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Contains(t, a.body, `"username":"kim"`)

	body := `{"username":"lee","totalPrice":100,"appliedYearMonth":"2026-11"}`
	a = b.do(t, http.MethodPost, "/v1/order-requests", "Bearer "+b.viewer, "application/json", body)
	require.Equal(t, http.StatusForbidden, a.status, a.body)
	require.Contains(t, a.body, "operator vera is a viewer")
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM order_request WHERE username = 'lee'`))
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM operator_action`))

	a = b.do(t, http.MethodPost, "/v1/order-requests", basic("admin", b.admin), "application/json", body)
	require.Equal(t, http.StatusAccepted, a.status, a.body)
	var by, via, action, filter string
	var status int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT by, via, action, filter::text, status FROM operator_action`).Scan(&by, &via, &action, &filter, &status))
	require.Equal(t, []any{"admin", "api", "create_order_request", 202}, []any{by, via, action, status})
	require.JSONEq(t, body, filter)
	require.Contains(t, b.worker.Output(), `msg="operator action" operator=admin role=operator via=api action=create_order_request`)
}

// Probe: 54,330 wrong tokens in 10 s, nothing in the log. Now: each
// failure is logged (address, endpoint, never the token) and past 20 a
// minute the address gets 429 with Retry-After.
func TestProbeWrongTokensAreLoggedAndThrottled(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	var last answer
	for i := range 25 {
		last = b.do(t, http.MethodGet, "/riverui/api/jobs?limit=1", basic("admin", fmt.Sprintf("guess-%02d-0123456789", i)), "", "")
		if i < 20 {
			require.Equal(t, http.StatusUnauthorized, last.status, i)
		}
	}
	require.Equal(t, http.StatusTooManyRequests, last.status)
	wait, err := strconv.Atoi(last.header.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, wait >= 1 && wait <= 60, wait)
	out := b.worker.Output()
	require.Equal(t, 19, strings.Count(out, `msg="http: authentication failed" credentials=operator addr=127.0.0.1 method=GET path=/riverui/api/jobs reason="wrong basic credentials"`))
	require.Equal(t, 1, strings.Count(out, `msg="http: authentication throttled" credentials=operator addr=127.0.0.1`))
	require.NotContains(t, out, "guess-", "no presented secret is logged")
	// Members from that address are not locked out by it.
	a := b.do(t, http.MethodPost, "/v1/coupons/"+b.coupon+"/issue", member(t, b.m(5)), "", "")
	require.Equal(t, http.StatusAccepted, a.status, a.body)
}

// Probe: River UI's retry, delete and pause left no record. Now: each is an
// operator's, recorded with their name; a viewer's is refused and leaves
// nothing.
func TestProbeRiverUIActionsAreRecorded(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := context.Background()
	var ids []int64
	rows, err := b.pool.Query(ctx, `SELECT id FROM river_job WHERE queue = $1 ORDER BY id`, parkedQueue)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 5)
	post := func(method, path, authz, body string) int {
		req, err := http.NewRequest(method, b.base+"/riverui"+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", authz)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 500, "%s", out)
		return resp.StatusCode
	}
	cancel := fmt.Sprintf(`{"ids":["%d","%d"]}`, ids[0], ids[1])
	require.Equal(t, http.StatusForbidden, post(http.MethodPost, "/api/jobs/cancel", basic("vera", b.viewer), cancel))
	require.Equal(t, http.StatusForbidden, post(http.MethodPut, "/api/queues/default/pause", "Bearer "+b.viewer, ""))
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM operator_action`), "a viewer's refused action leaves nothing")
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`))

	require.Equal(t, http.StatusOK, post(http.MethodPost, "/api/jobs/cancel", basic("admin", b.token), cancel))
	require.Equal(t, http.StatusOK, post(http.MethodPost, "/api/jobs/retry", "Bearer "+b.token, fmt.Sprintf(`{"ids":["%d"]}`, ids[0])))
	require.Equal(t, http.StatusOK, post(http.MethodPost, "/api/jobs/delete", "Bearer "+b.token, fmt.Sprintf(`{"ids":["%d"]}`, ids[2])))
	require.Equal(t, http.StatusOK, post(http.MethodPut, "/api/queues/default/pause", "Bearer "+b.token, ""))
	require.Equal(t, http.StatusOK, post(http.MethodPut, "/api/queues/default/resume", "Bearer "+b.token, ""))

	type rec struct {
		Action, Via, By, Filter string
		Matched, Acted          int64
		Status                  int
	}
	var got []rec
	rows, err = b.pool.Query(ctx, `SELECT action, via, by, filter::text, matched, acted, status FROM operator_action ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var r rec
		require.NoError(t, rows.Scan(&r.Action, &r.Via, &r.By, &r.Filter, &r.Matched, &r.Acted, &r.Status))
		var f any
		require.NoError(t, json.Unmarshal([]byte(r.Filter), &f))
		b, _ := json.Marshal(f)
		r.Filter = string(b)
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []rec{
		{"cancel", "riverui", "admin", fmt.Sprintf(`{"ids":["%d","%d"]}`, ids[0], ids[1]), 2, 2, 200},
		{"retry", "riverui", "admin", fmt.Sprintf(`{"ids":["%d"]}`, ids[0]), 1, 1, 200},
		{"delete", "riverui", "admin", fmt.Sprintf(`{"ids":["%d"]}`, ids[2]), 1, 1, 200},
		{"pause", "riverui", "admin", `{"queue":"default"}`, 1, 1, 200},
		{"resume", "riverui", "admin", `{"queue":"default"}`, 1, 1, 200},
	}, got)
	require.Equal(t, 1, int(testkit.Count(t, b.pool, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`)))
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM river_job WHERE id = $1`, ids[2]))
	require.Contains(t, b.worker.Output(), `msg="operator action" operator=admin role=operator via=riverui action=pause target="{\"queue\":\"default\"}" status=200`)
}

// Probe: JSON read from a body with no Content-Type, or application/jsonfoo
// (a form any site can post), and invalid UTF-8 silently mended. Now: 415
// and 400, nothing done; every answer says nosniff.
func TestProbeBodiesMustBeJSONAndUTF8(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	path := "/v1/coupons/" + b.coupon + "/issue"
	for _, ct := range []string{"", "application/jsonfoo", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		a := b.do(t, http.MethodPost, path, member(t, b.m(1)), ct, fmt.Sprintf(`{"memberId":%d}`, b.m(1)))
		require.Equal(t, http.StatusUnsupportedMediaType, a.status, ct)
		require.Equal(t, "nosniff", a.header.Get("X-Content-Type-Options"))
	}
	a := b.do(t, http.MethodPost, path, member(t, b.m(1)), "APPLICATION/JSON; charset=utf-8", fmt.Sprintf(`{"memberId":%d}`, b.m(1)))
	require.Equal(t, http.StatusAccepted, a.status, a.body)
	a = b.do(t, http.MethodPost, "/v1/order-requests", "Bearer "+b.admin, "application/json",
		"{\"username\":\"k\xffim\",\"totalPrice\":1,\"appliedYearMonth\":\"2026-11\"}")
	require.Equal(t, http.StatusBadRequest, a.status, a.body)
	require.Contains(t, a.body, "not valid UTF-8")
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM order_request`))
	a = b.do(t, http.MethodGet, "/ui/", basic("vera", b.viewer), "", "")
	require.Equal(t, http.StatusOK, a.status)
	require.Equal(t, "frame-ancestors 'none'", a.header.Get("Content-Security-Policy"))
	require.Equal(t, "DENY", a.header.Get("X-Frame-Options"))
}

// Probe: /metrics listed every active coupon's code to anyone. Now, with no
// METRICS_TOKEN, it serves sums only; with one, it needs it.
func TestProbeMetricsNameNoCoupon(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	a := b.do(t, http.MethodGet, "/v1/coupons/"+b.coupon+"/issue", "", "", "")
	require.Equal(t, http.StatusMethodNotAllowed, a.status)
	var body string
	require.Eventually(t, func() bool {
		a = b.do(t, http.MethodGet, "/metrics", "", "", "")
		body = a.body
		return a.status == http.StatusOK && strings.Contains(body, "tidemark_coupons_active 1")
	}, 20*time.Second, 200*time.Millisecond, "the coupon is counted")
	require.NotContains(t, body, b.coupon)
	require.NotContains(t, body, `coupon="`)
	require.Contains(t, body, "tidemark_coupon_total_quantity 5")
	require.Contains(t, body, "tidemark_coupon_gate_stock 5")

	m := setupOps(t)
	resp, _ := m.get(t, "/metrics", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "with METRICS_TOKEN, /metrics needs it")
	resp, _ = m.get(t, "/metrics", "Bearer "+m.token)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an operator's token is not the metrics token")
}

// Probe: a body sent one byte every 3 s, or headers that never end, kept a
// connection for good. Now the listener cuts it within 30 s, before any
// handler saw it.
func TestProbeSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	b := setupSecurity(t)
	for _, name := range []string{"slow body", "slow headers"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", b.worker.Addr)
			require.NoError(t, err)
			defer conn.Close()
			start := time.Now()
			if name == "slow body" {
				_, err = fmt.Fprintf(conn, "POST /v1/coupons/%s/issue HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"+
					"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n", b.coupon, member(t, b.m(3)))
			} else {
				_, err = fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\n")
			}
			require.NoError(t, err)
			closed := make(chan error, 1)
			var answer []byte
			go func() {
				var err error
				answer, err = io.ReadAll(bufio.NewReader(conn))
				closed <- err
			}()
			tick := time.NewTicker(3 * time.Second)
			defer tick.Stop()
			for done := false; !done; {
				select {
				case <-closed:
					done = true
				case <-tick.C:
					if name == "slow body" {
						_, _ = conn.Write([]byte(" "))
					} else {
						_, _ = conn.Write([]byte("X-Slow: 1\r\n"))
					}
				case <-time.After(60 * time.Second):
					t.Fatal("the connection is still open after 60 s")
				}
			}
			require.Less(t, time.Since(start), 30*time.Second, "cut by the read timeouts")
			require.NotContains(t, string(answer), b.worker.Addr, "an answer names no address of the server")
		})
	}
	t.Cleanup(func() {
		_, members := b.seats(t)
		require.Empty(t, members, "the slow request was never handled")
	})
}

// Probe: ADMIN_TOKEN=' ' was accepted (Basic "admin: " got River UI). Now a
// secret in a bad shape stops the worker at start, exit 2, naming the
// variable and never the secret.
func TestProbeBadSecretsStopTheWorker(t *testing.T) {
	t.Parallel()
	bin := testbin.Build(t, "worker")
	dbURL := testkit.DatabaseURL(t)
	good := sha256Hex("a-good-token-0123456789")
	for _, c := range []struct {
		env          []string
		want, secret string
	}{
		{[]string{"ADMIN_TOKEN= "}, "ADMIN_TOKEN: is only spaces", ""},
		{[]string{"ADMIN_TOKEN=short-pw"}, "ADMIN_TOKEN: is 8 bytes; want a random token of at least 16 bytes", "short-pw"},
		{[]string{"MEMBER_JWT_SECRET=sixteen-byte-key"}, "MEMBER_JWT_SECRET: is 16 bytes", "sixteen-byte-key"},
		{[]string{"METRICS_TOKEN=metrics"}, "METRICS_TOKEN: is 7 bytes", "metrics"},
		{[]string{"OPERATORS_FILE=" + operatorsFile(t, "ann:operator:"+good, "bob:root:"+good)}, `line 3: role "root": want viewer or operator`, good},
		{[]string{"OPERATORS_FILE=" + operatorsFile(t, "ann:operator:"+good[:40])}, `line 2: operator "ann": want the 64 hex digits`, good[:40]},
		{[]string{"OPERATORS_FILE=" + operatorsFile(t, "admin:viewer:"+good), "ADMIN_TOKEN=admin-token-0123456789"},
			`ADMIN_TOKEN: operator "admin" is listed twice`, "admin-token-0123456789"},
		{[]string{"OPERATORS_FILE=/nonexistent/operators"}, "OPERATORS_FILE: open /nonexistent/operators: no such file or directory", ""},
	} {
		code, stdout, stderr := testbin.Run(t, bin, append(c.env, "DATABASE_URL="+dbURL, "HTTP_ADDR=127.0.0.1:0"))
		require.Equal(t, 2, code, "%v: %s", c.env, stderr)
		require.True(t, strings.HasPrefix(stderr, "worker: configuration: "), stderr)
		require.Contains(t, stderr, c.want)
		if c.secret != "" {
			require.NotContains(t, stdout+stderr, c.secret)
		}
	}
}

// Probe: HTTP_MAX_CONNS idle keep-alive connections held every slot, and
// /healthz waited. Now an idle connection yields its slot to a new one.
func TestProbeIdleConnectionsYieldTheirSlots(t *testing.T) {
	t.Parallel()
	w := testbin.StartWorker(t, "DATABASE_URL="+testkit.DatabaseURL(t), "REDIS_URL="+testredis.URL(), "PERIODIC_JOBS=false",
		"HTTP_MAX_CONNS=16")
	for range 16 {
		conn, err := net.Dial("tcp", w.Addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		_, err = fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode) // and now it idles, keeping its connection
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := range 3 {
		resp, err := hc.Get("http://" + w.Addr + "/healthz")
		require.NoError(t, err, "request %d", i)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}

// Probe: a River UI action with its job ids given twice ("ids" and "IDS")
// cancelled one job while its record named another. Now it is refused.
func TestProbeRiverUIActionWithAmbiguousBody(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	req, err := http.NewRequest(http.MethodPost, b.base+"/riverui/api/jobs/cancel", strings.NewReader(`{"ids":["1"],"IDS":["2"]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `given twice`)
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`))
	require.Zero(t, testkit.Count(t, b.pool, `SELECT count(*) FROM operator_action`))
}

// With neither MEMBER_JWT_SECRET nor MEMBER_JWKS_URL the member endpoints
// are closed with a reason, not open.
func TestProbeMemberEndpointsClosedWithoutVerification(t *testing.T) {
	t.Parallel()
	w := testbin.StartWorker(t, "DATABASE_URL="+testkit.DatabaseURL(t), "REDIS_URL="+testredis.URL(), "PERIODIC_JOBS=false")
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v1/coupons/ANY/issue"},
		{http.MethodGet, "/v1/therapy-statistics?therapyUserId=1&yearMonth=2026-11"},
	} {
		req, err := http.NewRequest(c.method, "http://"+w.Addr+c.path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer a.b.c")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, c.path)
		require.Contains(t, string(body), "member sign-in is not configured: set MEMBER_JWT_SECRET or MEMBER_JWKS_URL")
	}
	require.Contains(t, w.Output(), "member endpoints answer 503")
}
