package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
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
	require.Equal(t, "2026-12-01", BusinessDate(next, seoul))
	y, m, err := TherapyMonthFor(BusinessDate(next, seoul), seoul)
	require.NoError(t, err)
	require.Equal(t, [2]int{2026, 11}, [2]int{y, m})

	periodic, err := PeriodicJobs(Deps{TZ: seoul})
	require.NoError(t, err)
	require.NotEmpty(t, periodic)
}
