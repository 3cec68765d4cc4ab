package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

// The daily schedule fires at 00:00 in BATCH_TZ, and that run's business
// date aggregates the month that just ended.
func TestDailyScheduleIsMidnightInBatchTZ(t *testing.T) {
	t.Parallel()
	seoul := testkit.TZ()
	sched, err := dailyAt("0 0 * * *", seoul)
	require.NoError(t, err)

	// 30 November 23:30 KST is 14:30 UTC; the next run is 1 December 00:00 KST.
	next := sched.Next(time.Date(2026, 11, 30, 14, 30, 0, 0, time.UTC))
	require.True(t, next.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, seoul)), "next run %s", next)
	require.Equal(t, "2026-12-01", calendar.BusinessDate(next, seoul))
	y, m, err := calendar.TherapyMonthFor(calendar.BusinessDate(next, seoul))
	require.NoError(t, err)
	require.Equal(t, [2]int{2026, 11}, [2]int{y, m})

	periodic, err := PeriodicJobs(Deps{TZ: seoul})
	require.NoError(t, err)
	require.NotEmpty(t, periodic)
}

// The settlement's schedule fires calendar.SettlementStart after midnight in
// BATCH_TZ, and that run is for the date it fires on.
func TestSettlementScheduleIsSettlementStartInBatchTZ(t *testing.T) {
	t.Parallel()
	seoul := testkit.TZ()
	require.Equal(t, "30 0 * * *", dailySpec(calendar.SettlementStart))
	sched, err := dailyAt(dailySpec(calendar.SettlementStart), seoul)
	require.NoError(t, err)

	// 20 November 15:00 UTC is 21 November 00:00 KST; the next run is 00:30.
	next := sched.Next(time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC))
	require.True(t, next.Equal(time.Date(2026, 11, 21, 0, 30, 0, 0, seoul)), "next run %s", next)
	require.Equal(t, "2026-11-21", calendar.SettlementBusinessDate(next, seoul))
}

// A worker's client schedules every periodic kind under its ID: the orders'
// reconciliation with the coupons' and the statistics'.
func TestPeriodicJobsListEveryScheduledKind(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.Pool(t)
	deps := Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
	client, err := NewClient(pool, ClientConfig{Queues: map[string]int{QueueDefault: 1}, Periodic: true,
		Retention: 24 * time.Hour, RescueAfter: time.Minute}, deps)
	require.NoError(t, err)
	for _, id := range []string{"therapy_daily", "point_settlement_daily", "coupon_reconcile_all", "therapy_stats_verify", "order_reconcile", "archive_maintain"} {
		require.True(t, client.PeriodicJobs().RemoveByID(id), "periodic job %s", id)
	}
	periodic, err := PeriodicJobs(deps)
	require.NoError(t, err)
	require.Len(t, periodic, 6, "and nothing else")
}

// The kinds that claim no lease are exactly the three whose writes a stale
// attempt may make as well as a fresh one (fence.go); every other kind
// claims its job's lease.
func TestUnleasedKinds(t *testing.T) {
	t.Parallel()
	require.Equal(t, map[string]bool{"therapy_stats": true, "coupon_issue_persist": true, "order_submit": true}, unleasedKinds())
}
