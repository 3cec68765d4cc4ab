package main_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// settled is a business date the worker settled, with the counts SQL holds.
type settled struct {
	date  string
	jobID int64
	// counts are the settlement row's counts on the batch page, from SQL.
	counts map[string]int64
}

// settleToday has the worker settle today's business date (BATCH_TZ, the
// default zone) over two ledger rows, and reads the run's counts back from
// batch_job_execution and point_daily_settlement.
func (b *opsBundle) settleToday(t *testing.T) settled {
	t.Helper()
	ctx := context.Background()
	tz, err := time.LoadLocation(config.DefaultTZ)
	require.NoError(t, err)
	st := store.New(b.pool)
	_, err = st.InsertLedger(ctx, []store.LedgerEntry{
		{MemberID: 1, Kind: "EARN", Amount: 10, OccurredAt: time.Now().Add(-48 * time.Hour)},
		{MemberID: 1, Kind: "USE", Amount: 4, OccurredAt: time.Now().Add(-47 * time.Hour)}}, tz)
	require.NoError(t, err)
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, jobs.Deps{Store: st, TZ: tz, Logger: testkit.Logger(t)})
	require.NoError(t, err)
	s := settled{date: calendar.BusinessDate(time.Now(), tz)}
	job, err := jobs.EnqueueSettlement(ctx, client, st, s.date, jobs.SettlementRunOpts{})
	require.NoError(t, err)
	s.jobID = job.ID
	testkit.WaitFor(t, 30*time.Second, "the settlement completes", func() (bool, error) {
		var state string
		err := b.pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, job.ID).Scan(&state)
		return state == "completed", err
	})
	var read, written, skipped, items int64
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT e.read_count, e.write_count, e.skip_count, p.item_count
		FROM batch_job_execution e JOIN point_daily_settlement p ON p.job_id = e.job_execution_id
		WHERE e.job_execution_id = $1`, job.ID).Scan(&read, &written, &skipped, &items))
	require.Equal(t, int64(2), items)
	s.counts = map[string]int64{"runs": 1, "read": read, "written": written, "skipped": skipped, "items": items}
	return s
}

var (
	countCell = regexp.MustCompile(`data-count="(\w+)">\w+ <b>(\d+)</b>`)
	stateAttr = regexp.MustCompile(`data-state="(\w*)"`)
)

// runRowHTML is the batch page's row of batch on date.
func runRowHTML(t *testing.T, page []byte, date, batch string) string {
	t.Helper()
	row := regexp.MustCompile(`(?s)<tr class="run[^"]*" data-date="` + date + `" data-batch="` + batch + `"[^>]*>.*?</tr>`).Find(page)
	require.NotNil(t, row, "no %s row for %s", batch, date)
	return string(row)
}

// runRow returns the batch page's row of batch on date: its state and counts.
func runRow(t *testing.T, page []byte, date, batch string) (string, map[string]int64) {
	t.Helper()
	row := regexp.MustCompile(`(?s)<tr class="run[^"]*" data-date="` + date + `" data-batch="` + batch + `"[^>]*>.*?</tr>`).Find(page)
	require.NotNil(t, row, "no %s row for %s in:\n%s", batch, date, page)
	counts := map[string]int64{}
	for _, m := range countCell.FindAllSubmatch(row, -1) {
		n, err := strconv.ParseInt(string(m[2]), 10, 64)
		require.NoError(t, err)
		counts[string(m[1])] = n
	}
	return string(stateAttr.FindSubmatch(row)[1]), counts
}

// The batch page shows a settled date's settlement with the counts SQL
// holds and a link to its job in River UI, and every batch of every one of
// the last 14 dates.
func TestBatchPageShowsASettledDate(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	s := b.settleToday(t)
	// One order request stuck in SENDING for two minutes, one just claimed.
	// The stuck one's error quotes the partner's URL with its secrets, as
	// rows written before last_error was redacted may.
	var stuck int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		INSERT INTO order_request (username, total_price, applied_year_month, status, updated_at, last_error)
		VALUES ('stuck', 10, '2026-11', 'SENDING', now() - interval '2 minutes',
		        'Post "https://order:S3cretPW@partner.example/orders?api_key=S3cretKey": connection refused'),
		       ('fresh', 10, '2026-11', 'SENDING', now(), NULL)
		RETURNING id`).Scan(&stuck))

	resp, page := b.get(t, "/ui/", basic("admin", b.token))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", page)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	state, counts := runRow(t, page, s.date, store.BatchSettlement)
	require.Equal(t, store.RunCompleted, state)
	require.Equal(t, s.counts, counts)
	require.Contains(t, string(page), fmt.Sprintf(`<a href="/riverui/jobs/%d">#%d</a>`, s.jobID, s.jobID))
	// BATCH_DEADLINES=therapy=00:00,settlement=00:00: today's therapy run
	// (none) and yesterday's settlement (none) are late; today's settlement
	// is due at midnight tonight, and done.
	tz, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	yesterday := calendar.BusinessDate(time.Now().In(tz).AddDate(0, 0, -1), tz)
	for _, r := range []struct {
		date, batch string
		late        bool
	}{{s.date, store.BatchTherapy, true}, {yesterday, store.BatchSettlement, true}, {s.date, store.BatchSettlement, false},
		{s.date, store.BatchOrders, false}} {
		row := runRowHTML(t, page, r.date, r.batch)
		require.Equal(t, r.late, strings.Contains(row, `data-late="true"`), "%s %s late", r.date, r.batch)
		require.Equal(t, r.late, strings.Contains(row, `state-late">late</span>`), "%s %s shows late", r.date, r.batch)
	}
	require.Contains(t, runRowHTML(t, page, s.date, store.BatchSettlement), "due "+calendar.NextBusinessDate(time.Now(), tz)+" 00:00:00")
	require.Len(t, regexp.MustCompile(`<tr class="run`).FindAll(page, -1), 14*len(store.BatchKinds))
	orders := regexp.MustCompile(`<tr data-order="(\d+)"><td>\d+</td><td>(\w+)</td>`).FindAllSubmatch(page, -1)
	require.Len(t, orders, 1, "only the stuck request is listed")
	require.Equal(t, fmt.Sprint(stuck), string(orders[0][1]))
	require.Equal(t, "stuck", string(orders[0][2]))
	require.Contains(t, string(page), "order:xxxxx@partner.example/orders?api_key=xxxxx")
	require.NotContains(t, string(page), "S3cret")

	resp, _ = b.get(t, "/ui/", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Basic realm="tidemark"`, resp.Header.Get("WWW-Authenticate"))
	resp, _ = b.get(t, "/ui/nothing", basic("admin", b.token))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
