package calendar_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
)

// The daily therapy run on a date aggregates the month of the day before:
// the run on the 1st finalises the month that just ended.
func TestTherapyMonthFor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		date        string
		year, month int
	}{
		{"2026-11-20", 2026, 11},
		{"2026-12-01", 2026, 11},
		{"2027-01-01", 2026, 12},
		{"2024-03-01", 2024, 2},
		{"2026-11-02", 2026, 11},
	}
	for _, tc := range cases {
		y, m, err := calendar.TherapyMonthFor(tc.date)
		require.NoError(t, err, tc.date)
		require.Equal(t, [2]int{tc.year, tc.month}, [2]int{y, m}, tc.date)
	}
	for _, bad := range []string{"2026-11-31", "2026-11", "", " 2026-11-20"} {
		_, _, err := calendar.TherapyMonthFor(bad)
		require.EqualError(t, err, `business date "`+bad+`": want YYYY-MM-DD`, bad)
	}
}

// TherapyMonthOf takes the date in the time's own zone: 00:10 on 1 December
// in Seoul is still 30 November in UTC, but the run there aggregates
// November, as TherapyMonthFor of the Seoul date does.
func TestTherapyMonthOfIsTheDateInItsZone(t *testing.T) {
	t.Parallel()
	seoul := zone(t, "Asia/Seoul")
	now := time.Date(2026, 12, 1, 0, 10, 0, 0, seoul)
	y, m := calendar.TherapyMonthOf(now)
	require.Equal(t, [2]int{2026, 11}, [2]int{y, m})
	fy, fm, err := calendar.TherapyMonthFor(calendar.BusinessDate(now, seoul))
	require.NoError(t, err)
	require.Equal(t, [2]int{fy, fm}, [2]int{y, m})

	y, m = calendar.TherapyMonthOf(time.Date(2026, 12, 2, 0, 10, 0, 0, seoul))
	require.Equal(t, [2]int{2026, 12}, [2]int{y, m})
}

// The nightly settlement at 00:30 on the 21st is the run for the 21st; a
// worker started at 00:10 asks for the 20th, already run.
func TestSettlementBusinessDate(t *testing.T) {
	t.Parallel()
	seoul := zone(t, "Asia/Seoul")
	require.Equal(t, 30*time.Minute, calendar.SettlementStart)
	require.Equal(t, "2026-11-20", calendar.SettlementBusinessDate(time.Date(2026, 11, 21, 0, 29, 0, 0, seoul), seoul))
	require.Equal(t, "2026-11-21", calendar.SettlementBusinessDate(time.Date(2026, 11, 21, 0, 30, 0, 0, seoul), seoul))
	require.Equal(t, "2026-11-21", calendar.SettlementBusinessDate(time.Date(2026, 11, 20, 15, 45, 0, 0, time.UTC), seoul))
}
