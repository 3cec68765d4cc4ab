package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/internal/partnersim"
)

// jobAttempts is what River recorded of the order_submit jobs: the most
// attempts any job ran (a snooze gives its attempt back) and the most
// errors any job recorded, with the jobs discarded.
func (b *orderBundle) jobAttempts(t *testing.T) (maxAttempt, maxErrors, discarded int) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT coalesce(max(attempt), 0), coalesce(max(coalesce(array_length(errors, 1), 0)), 0),
		       count(*) FILTER (WHERE state = 'discarded')
		FROM river_job WHERE kind = 'order_submit'`).Scan(&maxAttempt, &maxErrors, &discarded))
	return maxAttempt, maxErrors, discarded
}

func (p partner) putFaults(t *testing.T, f partnersim.Faults) {
	t.Helper()
	body, err := json.Marshal(f)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPut, p.tpURL+"/_faults", bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
}

// scrape returns the lines of a worker's /metrics that start with prefix.
func scrape(t *testing.T, addr, prefix string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// Two worker processes, 64 calls each in flight at most, against a partner
// that answers 429 above 100 calls a second, with ORDER_API_RATE=90
// shared: every order is applied once, almost no call is refused, and no
// job spends an attempt on the partner's limit.
func TestOrderSubmit_SharedRateLimit(t *testing.T) {
	t.Parallel()
	const n = 3000
	b := setupOrders(t, "--rate-limit", "100")
	b.insertRequests(t, n)
	start := time.Now()
	w1 := b.startWorker(t, "ORDER_API_RATE=90")
	b.startWorker(t, "ORDER_API_RATE=90")
	s := b.requireAllApplied(t, n, 3*time.Minute)
	elapsed := time.Since(start)
	b.requireAgreement(t)

	calls := s.Posts + s.Gets + s.TooMany
	t.Logf("%d orders in %s (%.1f/s): %d POSTs, %d GETs, %d answered 429 (%.2f %%)", n, elapsed.Round(time.Millisecond),
		float64(n)/elapsed.Seconds(), s.Posts, s.Gets, s.TooMany, 100*float64(s.TooMany)/float64(calls))
	require.EqualValues(t, n, s.Created, "one order each")
	require.Less(t, float64(s.TooMany), 0.02*float64(calls), "under 2 %% of calls answered 429")
	maxAttempt, maxErrors, discarded := b.jobAttempts(t)
	require.LessOrEqual(t, maxAttempt, 2, "no job past attempt 2")
	require.LessOrEqual(t, maxErrors, 1, "no job with more than one errored attempt")
	require.Zero(t, discarded)
	// The budget, not the partner's refusals, paced the calls.
	require.NotEmpty(t, scrape(t, w1.Addr, `tidemark_partner_budget_waits_total{reason="rate"}`))
}

// A partner down for maintenance for a minute (503 with Retry-After): no
// job spends an attempt or is discarded, and the backlog is applied within
// seconds of the partner's return.
func TestOrderSubmit_MaintenanceWindow(t *testing.T) {
	t.Parallel()
	const n = 300
	b := setupOrders(t)
	w1 := b.startWorker(t)
	b.startWorker(t)
	b.putFaults(t, partnersim.Faults{Maintenance: partnersim.Duration(time.Minute), RetryAfter: partnersim.Duration(5 * time.Second)})
	maintUntil := b.stats(t).MaintenanceUntil
	require.False(t, maintUntil.IsZero())
	b.insertRequests(t, n)

	// While the partner is down the jobs wait: nothing applied, no attempt
	// spent, a pause in force for every process.
	testkit.WaitFor(t, 30*time.Second, "the workers met the 503s", func() (bool, error) { return b.stats(t).Unavailable > 0, nil })
	require.NotEmpty(t, scrape(t, w1.Addr, `tidemark_partner_paused_seconds`))
	s := b.requireAllApplied(t, n, time.Until(maintUntil)+time.Minute)
	b.requireAgreement(t)

	var first, last time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT min(created_at), max(created_at) FROM thirdparty.orders`).Scan(&first, &last))
	t.Logf("partner back at %s; orders created %s..%s after; %d calls answered 503", maintUntil.Format(time.TimeOnly),
		first.Sub(maintUntil).Round(time.Millisecond), last.Sub(maintUntil).Round(time.Millisecond), s.Unavailable)
	require.False(t, first.Before(maintUntil), "no order created during maintenance")
	require.Less(t, last.Sub(maintUntil), 15*time.Second, "the backlog drained within seconds of the partner's return")
	maxAttempt, maxErrors, discarded := b.jobAttempts(t)
	require.LessOrEqual(t, maxAttempt, 2, "no job past attempt 2")
	require.Zero(t, maxErrors, "a 503 costs no attempt")
	require.Zero(t, discarded)
	// Each 503 paused every process for its Retry-After: the partner saw
	// a few calls every 5 s, not every job's.
	require.Less(t, s.Unavailable, int64(n), "%d calls answered 503", s.Unavailable)
}

// A partner that does not answer at all (its process gone) opens the
// shared breaker: the jobs snooze while it is open, probe one lookup at a
// time, and once the partner is back every order is applied once, no job
// having spent more than one attempt; the batch page shows the breaker
// while it is open.
func TestOrderSubmit_BreakerWhilePartnerDown(t *testing.T) {
	t.Parallel()
	const n = 100
	b := setupOrders(t)
	addr := strings.TrimPrefix(b.tpURL, "http://")
	b.tp.Kill()
	const token = "breaker-test-admin-token-0123456789"
	w := b.startWorker(t, "ADMIN_TOKEN="+token)
	b.insertRequests(t, n)

	open := `tidemark_partner_breaker_state{state="open"} 1`
	testkit.WaitFor(t, 30*time.Second, "the breaker opens", func() (bool, error) {
		return len(scrape(t, w.Addr, open)) == 1, nil
	})
	req, err := http.NewRequest(http.MethodGet, "http://"+w.Addr+"/ui/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), `id="partner-breaker">Circuit breaker open`)

	// Down for two more probe periods: the jobs wait without an attempt.
	_, errorsAtOpen, _ := b.jobAttempts(t)
	snoozes := func() int {
		lines := scrape(t, w.Addr, `tidemark_partner_budget_snoozes_total{reason="breaker"}`)
		if len(lines) != 1 {
			return 0
		}
		var v float64
		_, _ = fmt.Sscan(strings.Fields(lines[0])[1], &v)
		return int(v)
	}
	testkit.WaitFor(t, 30*time.Second, "jobs snoozed by the breaker for two periods", func() (bool, error) {
		return snoozes() >= 2*n, nil
	})
	_, maxErrors, _ := b.jobAttempts(t)
	require.Equal(t, errorsAtOpen, maxErrors, "no attempt spent while the breaker is open")

	b.tp, _ = testbin.StartThirdParty(t, b.dbURL, "--addr", addr)
	back := time.Now()
	b.requireAllApplied(t, n, time.Minute)
	t.Logf("all %d applied %s after the partner came back", n, time.Since(back).Round(time.Millisecond))
	b.requireAgreement(t)
	maxAttempt, maxErrors, discarded := b.jobAttempts(t)
	require.LessOrEqual(t, maxAttempt, 2, "no job past attempt 2")
	require.LessOrEqual(t, maxErrors, 1)
	require.Zero(t, discarded)
	require.Len(t, scrape(t, w.Addr, `tidemark_partner_breaker_state{state="closed"} 1`), 1)
}

// Redis lost with a budget set: no call is made beyond a budget nobody can
// check; the jobs snooze, spend no attempt, and every order is applied once
// Redis is back (empty, as a lost Redis comes back).
func TestOrderSubmit_BudgetWhileRedisDown(t *testing.T) {
	t.Parallel()
	const n = 50
	b := setupOrders(t)
	rd := testredis.Start(t)
	w := b.startWorker(t, "REDIS_URL="+rd.URL, "ORDER_API_RATE=200")
	rd.Kill()
	b.insertRequests(t, n)
	testkit.WaitFor(t, 30*time.Second, "jobs snoozed for Redis", func() (bool, error) {
		lines := scrape(t, w.Addr, `tidemark_partner_budget_snoozes_total{reason="redis"}`)
		return len(lines) == 1 && !strings.HasSuffix(lines[0], " 0"), nil
	})
	s := b.stats(t)
	require.Zero(t, s.Posts+s.Gets, "no call without the budget")
	require.NoError(t, rd.Start())
	back := time.Now()
	b.requireAllApplied(t, n, time.Minute)
	t.Logf("all %d applied %s after Redis came back", n, time.Since(back).Round(time.Millisecond))
	maxAttempt, maxErrors, discarded := b.jobAttempts(t)
	require.Equal(t, 1, maxAttempt)
	require.Zero(t, maxErrors)
	require.Zero(t, discarded)
}
