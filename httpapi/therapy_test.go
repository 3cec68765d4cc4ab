package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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

var seoul = testkit.TZ()

type testBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	store  *store.Store
	client *jobs.Client
	srv    *httptest.Server
}

// setup serves the API on a test database. With work, a River client works
// the jobs the API enqueues; otherwise jobs stay queued.
func setup(t *testing.T, work bool) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	cc := jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second}
	if work {
		cc.Queues = map[string]int{"default": 2, "therapy": 4}
		cc.FetchCooldown, cc.FetchPollInterval = 10*time.Millisecond, 50*time.Millisecond
	}
	logger := testkit.Logger(t)
	client, err := jobs.NewClient(pool, cc, jobs.Deps{Store: st, TZ: seoul, Logger: logger})
	require.NoError(t, err)
	if work {
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(c))
		})
	}
	api := &httpapi.Server{Store: st, River: client, TZ: seoul, Callers: testCallers(t), Logger: logger}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	_, err = pool.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'INACTIVE')`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		VALUES (1, '2026-11-30 23:30:00+09', 600, true)`)
	require.NoError(t, err)
	return &testBundle{ctx: ctx, pool: pool, store: st, client: client, srv: srv}
}

func (b *testBundle) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out), "every answer is JSON")
	return resp.StatusCode, out
}

func (b *testBundle) jobCount(t *testing.T) int {
	t.Helper()
	return int(testkit.Count(t, b.pool, `SELECT count(*) FROM river_job`))
}

func TestRecoverBadInputIsRefusedAndEnqueuesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	bearer := "Bearer " + token
	cases := []struct {
		name, auth, body string
		status           int
		field            string
	}{
		{"missing token", "", `{"therapyUserId":1,"yearMonth":"2026-11"}`, 401, "Authorization"},
		{"wrong token", "Bearer nope", `{"therapyUserId":1,"yearMonth":"2026-11"}`, 401, "Authorization"},
		{"not bearer", "Basic " + token, `{"therapyUserId":1,"yearMonth":"2026-11"}`, 401, "Authorization"},
		{"a viewer", "Bearer " + viewerToken, `{"therapyUserId":1,"yearMonth":"2026-11"}`, 403, ""},
		{"a member", memberBearer(t, 1), `{"therapyUserId":1,"yearMonth":"2026-11"}`, 401, "Authorization"},
		{"month 13", bearer, `{"therapyUserId":1,"yearMonth":"2026-13"}`, 400, "yearMonth"},
		{"two-digit year", bearer, `{"therapyUserId":1,"yearMonth":"26-11"}`, 400, "yearMonth"},
		{"month 00", bearer, `{"therapyUserId":1,"yearMonth":"2026-00"}`, 400, "yearMonth"},
		{"missing yearMonth", bearer, `{"therapyUserId":1}`, 400, "yearMonth"},
		{"missing user", bearer, `{"yearMonth":"2026-11"}`, 400, "therapyUserId"},
		{"zero user", bearer, `{"therapyUserId":0,"yearMonth":"2026-11"}`, 400, "therapyUserId"},
		{"user as string", bearer, `{"therapyUserId":"1","yearMonth":"2026-11"}`, 400, "therapyUserId"},
		{"yearMonth as number", bearer, `{"therapyUserId":1,"yearMonth":202611}`, 400, "yearMonth"},
		{"unknown field", bearer, `{"therapyUserId":1,"yearMonth":"2026-11","force":true}`, 400, "force"},
		{"malformed JSON", bearer, `{"therapyUserId":1,`, 400, "body"},
		{"two objects", bearer, `{"therapyUserId":1,"yearMonth":"2026-11"}{}`, 400, "body"},
		{"empty body", bearer, ``, 400, "body"},
		{"bad date-time", bearer, `{"therapyUserId":1,"yearMonth":"2026-11","startDateTime":"2026-11-03"}`, 400, "startDateTime"},
		// 2026-10-31T23:59:59+09:00 is October in KST although 14:59 UTC on 31 Oct.
		{"start before month", bearer, `{"therapyUserId":1,"yearMonth":"2026-11","startDateTime":"2026-10-31T23:59:59+09:00"}`, 400, "startDateTime"},
		// 2026-11-30T15:00:00Z is 1 December 00:00 KST: outside November.
		{"end after month", bearer, `{"therapyUserId":1,"yearMonth":"2026-11","endDateTime":"2026-11-30T15:00:00Z"}`, 400, "endDateTime"},
		{"end before start", bearer, `{"therapyUserId":1,"yearMonth":"2026-11","startDateTime":"2026-11-20T00:00:00+09:00","endDateTime":"2026-11-10T00:00:00+09:00"}`, 400, "endDateTime"},
		{"unknown user", bearer, `{"therapyUserId":99,"yearMonth":"2026-11"}`, 404, "therapyUserId"},
		{"body over 1 MiB", bearer, `{"therapyUserId":1,"yearMonth":"2026-11","x":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`, 413, "body"},
	}
	for _, tc := range cases {
		status, out := b.do(t, "POST", "/v1/therapy-statistics/recover", tc.auth, tc.body)
		require.Equal(t, tc.status, status, tc.name)
		require.Equal(t, tc.field, str(out["field"]), "%s: %v", tc.name, out)
		require.NotEmpty(t, out["error"], tc.name)
	}
	require.Zero(t, b.jobCount(t), "no bad request enqueued anything")
}

func TestGetTherapyStatistics(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	require.NoError(t, b.store.AggregateTherapy(b.ctx, []store.TherapyKey{store.NewTherapyKey(1, 2026, 11, seoul)}, seoul))

	// The member reads their own, with or without naming themself; a viewer
	// anyone's.
	for _, c := range []struct{ auth, query string }{
		{memberBearer(t, 1), "therapyUserId=1&yearMonth=2026-11"},
		{memberBearer(t, 1), "yearMonth=2026-11"},
		{"Bearer " + viewerToken, "therapyUserId=1&yearMonth=2026-11"},
		{"Bearer " + token, "therapyUserId=1&yearMonth=2026-11"},
	} {
		status, out := b.do(t, "GET", "/v1/therapy-statistics?"+c.query, c.auth, "")
		require.Equal(t, 200, status, c)
		require.Equal(t, float64(1), out["therapyUserId"])
		require.Equal(t, float64(1), out["performCount"])
		require.Equal(t, float64(600), out["totalDurationSeconds"])
		require.Equal(t, "2026-11-30T14:30:00Z", out["lastPerformedAt"])
	}
	// Another member's, existing or not, is refused alike; so is no token.
	for _, c := range []struct {
		auth, query string
		status      int
		field       string
	}{
		{memberBearer(t, 2), "therapyUserId=1&yearMonth=2026-11", 403, "therapyUserId"},
		{memberBearer(t, 2), "therapyUserId=99&yearMonth=2026-11", 403, "therapyUserId"},
		{"", "therapyUserId=1&yearMonth=2026-11", 401, "Authorization"},
		{"Bearer " + viewerToken + "x", "therapyUserId=1&yearMonth=2026-11", 401, "Authorization"},
		{"Bearer a.b.c", "therapyUserId=1&yearMonth=2026-11", 401, "Authorization"},
		{memberBearer(t, 1), "therapyUserId=1&yearMonth=2026-12", 404, ""},
		{memberBearer(t, 1), "therapyUserId=1&yearMonth=2026-13", 400, "yearMonth"},
		{"Bearer " + viewerToken, "therapyUserId=x&yearMonth=2026-11", 400, "therapyUserId"},
		{"Bearer " + viewerToken, "yearMonth=2026-11", 400, "therapyUserId"},
	} {
		status, out := b.do(t, "GET", "/v1/therapy-statistics?"+c.query, c.auth, "")
		require.Equal(t, c.status, status, "%v %v", c, out)
		require.Equal(t, c.field, str(out["field"]), c)
		require.NotContains(t, fmt.Sprint(out), "performCount")
	}
	status, _ := b.do(t, "GET", "/readyz", "", "")
	require.Equal(t, 200, status)

}

func TestRecoverReaggregatesEvenAfterSuccessToday(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	bearer := "Bearer " + token
	body := `{"therapyUserId":1,"yearMonth":"2026-11","startDateTime":"2026-11-01T00:00:00+09:00","endDateTime":"2026-11-30T23:59:59+09:00"}`

	waitDone := func(id int64) {
		testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("job %d SUCCESS in the batch log", id), func() (bool, error) {
			var st string
			err := b.pool.QueryRow(b.ctx, `SELECT status FROM therapy_batch_log WHERE job_id = $1`, id).Scan(&st)
			return st == "SUCCESS", err
		})
	}
	status, out := b.do(t, "POST", "/v1/therapy-statistics/recover", bearer, body)
	require.Equal(t, 202, status, out)
	first := int64(out["jobId"].(float64))
	waitDone(first)
	stats, err := b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 1, stats.PerformCount)

	// A late row arrives; recovering the same user-month the same day runs again.
	_, err = b.pool.Exec(b.ctx, `INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		VALUES (1, '2026-11-02 10:00:00+09', 60, false)`)
	require.NoError(t, err)
	status, out = b.do(t, "POST", "/v1/therapy-statistics/recover", bearer, body)
	require.Equal(t, 202, status, out)
	second := int64(out["jobId"].(float64))
	require.NotEqual(t, first, second)
	waitDone(second)
	stats, err = b.store.GetTherapyStatistics(b.ctx, 1, 2026, 11)
	require.NoError(t, err)
	require.Equal(t, 2, stats.PerformCount)
	require.Equal(t, 1, stats.CompletedCount)

	var trigger, start string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT args->>'trigger', args->>'start_date_time' FROM river_job WHERE id = $1`, second).Scan(&trigger, &start))
	require.Equal(t, "recover", trigger)
	require.Equal(t, "2026-11-01T00:00:00+09:00", start)
}

func TestOperatorEndpointsDisabledWithoutOperators(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	api := &httpapi.Server{Store: b.store, River: b.client, TZ: seoul, Logger: testkit.Logger(t), Callers: &httpapi.Callers{}}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/therapy-statistics/recover", "application/json", strings.NewReader(`{"therapyUserId":1,"yearMonth":"2026-11"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
	require.Zero(t, b.jobCount(t))
}
