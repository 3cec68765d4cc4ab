package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// parkedQueue is a queue no worker works: jobs put there stay available, so
// River UI and /metrics have something stable to show.
const parkedQueue = "parked"

// parkedKinds are the kinds of the jobs opsBundle parks.
var parkedKinds = []string{"coupon_reconcile", "order_reconcile", "point_settlement", "therapy_stats"}

type opsBundle struct {
	dbURL string
	pool  *pgxpool.Pool
	env   []string
	// base is the worker's URL, token its ADMIN_TOKEN; viewer is the token of
	// the operator "vera", a viewer (OPERATORS_FILE); metrics METRICS_TOKEN.
	base, token, viewer, metrics string
	worker                       *testbin.Proc
	// parkedAt is when the parked jobs were scheduled.
	parkedAt time.Time
}

// setupOps starts a worker with ADMIN_TOKEN, a viewer in OPERATORS_FILE and
// METRICS_TOKEN on a fresh database and parks jobs of four kinds, scheduled
// ten minutes ago, in a queue nobody works, and waits until they are
// available.
func setupOps(t *testing.T) *opsBundle {
	t.Helper()
	pool, dbURL := testkit.Pool(t)
	b := &opsBundle{dbURL: dbURL, pool: pool, token: "op-" + time.Now().Format("150405.000000"),
		viewer: "viewer-" + time.Now().Format("150405.000000"), metrics: "metrics-" + time.Now().Format("150405.000000"),
		parkedAt: time.Now().Add(-10 * time.Minute).Truncate(time.Second)}
	// Both batches due by midnight: today's therapy run is late until it
	// completes; the settlement due by it is yesterday's (00:30's run).
	b.env = []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testredis.URL(), "PERIODIC_JOBS=false",
		"BATCH_DEADLINES=therapy=00:00,settlement=00:00"}
	b.parkJobs(t)
	b.worker = testbin.StartWorker(t, append(b.env, "ADMIN_TOKEN="+b.token, "METRICS_TOKEN="+b.metrics,
		"OPERATORS_FILE="+operatorsFile(t, "vera:viewer:"+sha256Hex(b.viewer)))...)
	b.base = "http://" + b.worker.Addr
	// River inserts a job with a ScheduledAt as scheduled; the leader's
	// scheduler makes it available within seconds.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE queue = $1 AND state = 'available'`, parkedQueue).Scan(&n))
		return n == 5
	}, 30*time.Second, 100*time.Millisecond, "the parked jobs become available")
	return b
}

func (b *opsBundle) parkJobs(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, jobs.Deps{Store: store.New(b.pool), TZ: time.UTC,
		Logger: testkit.Logger(t)})
	require.NoError(t, err)
	opts := &river.InsertOpts{Queue: parkedQueue, ScheduledAt: b.parkedAt}
	_, err = client.InsertMany(ctx, []river.InsertManyParams{
		{Args: jobs.TherapyStatsArgs{TherapyUserID: 1, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, InsertOpts: opts},
		{Args: jobs.TherapyStatsArgs{TherapyUserID: 2, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, InsertOpts: opts},
		{Args: jobs.CouponReconcileArgs{CouponCode: "PARKED"}, InsertOpts: opts},
		{Args: jobs.OrderReconcileArgs{}, InsertOpts: opts},
		{Args: jobs.PointSettlementArgs{RunDate: "2026-12-01", Run: 1, Trigger: "test"}, InsertOpts: opts},
	})
	require.NoError(t, err)
}

// get sends GET path with the Authorization header auth ("" for none).
func (b *opsBundle) get(t *testing.T, path, auth string) (*http.Response, []byte) {
	t.Helper()
	return getURL(t, b.base+path, auth)
}

func getURL(t *testing.T, url, auth string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// operatorsFile writes an OPERATORS_FILE of lines and returns its path.
func operatorsFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "operators")
	require.NoError(t, os.WriteFile(p, []byte("# name:role:sha256 of the token\n"+strings.Join(lines, "\n")+"\n"), 0o600))
	return p
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// River UI is served by the worker under /riverui/, every page and API
// request behind an operator's token (Basic name:token or Bearer), and is
// off without operators.
func TestRiverUIRequiresAnOperator(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	for _, path := range []string{"/riverui/", "/riverui/jobs", "/riverui/api/jobs?state=available&limit=20"} {
		for name, auth := range map[string]string{
			"no credentials":  "",
			"wrong password":  basic("admin", b.token+"x"),
			"wrong user":      basic("root", b.token),
			"wrong bearer":    "Bearer " + b.token + "x",
			"empty password":  basic("admin", ""),
			"token as a user": basic(b.token, ""),
		} {
			resp, _ := b.get(t, path, auth)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s", path, name)
			require.Equal(t, `Basic realm="tidemark"`, resp.Header.Get("WWW-Authenticate"), "%s %s", path, name)
		}
		for name, auth := range map[string]string{"basic": basic("admin", b.token), "bearer": "Bearer " + b.token,
			"viewer basic": basic("vera", b.viewer), "viewer bearer": "Bearer " + b.viewer} {
			resp, body := b.get(t, path, auth)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", path, name, body)
			require.Equal(t, "frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"), path)
			require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		}
	}

	_, body := b.get(t, "/riverui/api/jobs?state=available&limit=20", "Bearer "+b.token)
	var list struct {
		Data []struct {
			ID    int64  `json:"id"`
			Kind  string `json:"kind"`
			Queue string `json:"queue"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &list), "%s", body)
	var kinds []string
	for _, j := range list.Data {
		require.Equal(t, parkedQueue, j.Queue)
		if !slices.Contains(kinds, j.Kind) {
			kinds = append(kinds, j.Kind)
		}
	}
	slices.Sort(kinds)
	require.Equal(t, parkedKinds, kinds, "the UI's API lists the parked jobs of every kind")

	// A form another site posts, with the browser's saved credentials, is
	// refused before it reaches River UI's API; the same request from the
	// UI's own page goes through.
	for site, want := range map[string]int{"cross-site": http.StatusForbidden, "same-origin": http.StatusOK} {
		req, err := http.NewRequest(http.MethodPost, b.base+"/riverui/api/jobs/cancel", strings.NewReader(`{"ids":[]}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", basic("admin", b.token))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sec-Fetch-Site", site)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		if want == http.StatusOK {
			require.NotEqual(t, http.StatusForbidden, resp.StatusCode, site)
		} else {
			require.Equal(t, want, resp.StatusCode, site)
		}
	}

	// The API's own routes are not behind the operator login.
	resp, _ := b.get(t, "/healthz", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Without operators the UI does not exist.
	off := testbin.StartWorker(t, b.env...)
	for _, auth := range []string{"", basic("admin", b.token), "Bearer " + b.token} {
		resp, _ := getURL(t, "http://"+off.Addr+"/riverui/", auth)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, _ = getURL(t, "http://"+off.Addr+"/riverui/api/jobs?state=available&limit=20", auth)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
}
