package main_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// chromiumPath is Debian's chromium, which scripts/services.sh installs.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless chromium whose every request carries auth, and returns its context. The test fails
// (never skips) without chromium: the operator pages are only checked by a
// real browser.
func newBrowser(t *testing.T, auth string) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser test needs Debian's chromium at %s (scripts/services.sh installs it): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": auth}})
	require.NoError(t, err)
	return ctx
}

// screenshot takes a viewport screenshot (River UI scrolls inside a fixed
// panel, so a full-page one shows no more). With UPDATE_SCREENSHOTS=1 it
// replaces docs/screenshots/<name>.png, otherwise it goes to a temp dir.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.NotEmpty(t, png)
	dir := t.TempDir()
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "screenshots")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// waitText waits until the page's text contains every one of texts.
func waitText(t *testing.T, ctx context.Context, texts ...string) {
	t.Helper()
	expr := "true"
	for _, s := range texts {
		expr += fmt.Sprintf(" && document.body.innerText.includes(%q)", s)
	}
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("waiting for %q: %v; the page says:\n%s", texts, err, text)
	}
}

// A real browser, logged in as admin, sees River UI list the jobs of four
// kinds and opens one job's page, where the job's own log lines are shown.
func TestRiverUIInABrowser(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := context.Background()
	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, jobs.Deps{Store: store.New(b.pool), TZ: seoul,
		Logger: testkit.Logger(t)})
	require.NoError(t, err)
	// A job that logs while it runs: the therapy fan-out of a date with no sessions.
	res, err := client.Insert(ctx, jobs.TherapyDailyArgs{BusinessDate: "2026-12-01"}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var state string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, res.Job.ID).Scan(&state))
		return state == "completed"
	}, 30*time.Second, 50*time.Millisecond)

	browser := newBrowser(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+b.token)))
	require.NoError(t, chromedp.Do(browser, chromedp.EmulateViewport(1280, 800)))

	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(b.base+"/riverui/jobs?state=available")))
	waitText(t, browser, parkedKinds...)
	screenshot(t, browser, "riverui-jobs")

	// Open a job's page from the list of completed jobs, by clicking it.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(b.base+"/riverui/jobs?state=completed")))
	waitText(t, browser, "therapy_daily")
	link := chromedp.CSS(fmt.Sprintf(`a[href$="/jobs/%d"]`, res.Job.ID))
	require.NoError(t, chromedp.Do(browser, chromedp.WaitVisible(link), chromedp.Click(link)))
	_, err = chromedp.Run(browser, chromedp.Poll[bool](
		fmt.Sprintf(`location.pathname === "/riverui/jobs/%d"`, res.Job.ID), chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err)
	waitText(t, browser, "therapy_daily", "2026-12-01", "Logs")
	// The job's log lines (riverlog), behind a disclosure on its attempt.
	logs := "//summary[text()='Logs']"
	require.NoError(t, chromedp.Do(browser, chromedp.Click(logs), chromedp.ScrollIntoView(logs)))
	waitText(t, browser, "msg=\"therapy_daily fan-out\" business_date=2026-12-01")
	screenshot(t, browser, "riverui-job")
}

// A real browser, logged in as admin, opens the batch page and finds the
// settled date's settlement row with the counts SQL holds, and its job's
// link into River UI, and the bulk cancel an operator ran.
func TestBatchPageInABrowser(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	s := b.settleToday(t)
	action := b.cancelParkedReconcile(t)

	browser := newBrowser(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+b.token)))
	require.NoError(t, chromedp.Do(browser, chromedp.EmulateViewport(1280, 800)))
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(b.base+"/ui/")))
	waitText(t, browser, "tidemark batches", s.date, "settlement", "Latest reconciliation reports", "stuck in SENDING")

	row := fmt.Sprintf(`tr[data-date=%q][data-batch="settlement"]`, s.date)
	got, err := chromedp.Run(browser, chromedp.Evaluate[string](fmt.Sprintf(
		`[...document.querySelectorAll('%s [data-count]')].map(e => e.dataset.count + '=' + e.querySelector('b').textContent).join(' ')`, row)))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("runs=%d read=%d written=%d skipped=%d items=%d",
		s.counts["runs"], s.counts["read"], s.counts["written"], s.counts["skipped"], s.counts["items"]), got)
	state, err := chromedp.Run(browser, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('%s .state').innerText`, row)))
	require.NoError(t, err)
	require.Equal(t, "completed", state)
	href, err := chromedp.Run(browser, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('%s a').getAttribute('href')`, row)))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("/riverui/jobs/%d", s.jobID), href)

	waitText(t, browser, "Operator actions")
	cells, err := chromedp.Run(browser, chromedp.Evaluate[[]string](fmt.Sprintf(
		`[...document.querySelectorAll('#actions tr[data-action="%d"] td')].map(td => td.innerText)`, action)))
	require.NoError(t, err)
	require.Len(t, cells, 10)
	require.Equal(t, []string{fmt.Sprint(action), "cancel", "cli", "kind=order_reconcile state=available,scheduled,retryable,pending queue=parked", "1", "1", "ops", ""},
		[]string{cells[0], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7], cells[8]})
	screenshot(t, browser, "batch-ui")
}
