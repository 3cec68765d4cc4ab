package calendar_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	tz, err := time.LoadLocation(name)
	require.NoError(t, err)
	return tz
}

func TestParseYearMonth(t *testing.T) {
	t.Parallel()
	const (
		malformed  = "want YYYY-MM, like 2026-11"
		outOfRange = "month out of range: want YYYY-MM with MM in 01..12"
	)
	cases := []struct {
		in          string
		year, month int
		err         string
	}{
		{in: "2026-11", year: 2026, month: 11},
		{in: "2026-01", year: 2026, month: 1},
		{in: "2026-12", year: 2026, month: 12},
		{in: "0001-01", year: 1, month: 1},
		{in: "9999-12", year: 9999, month: 12},
		{in: "2026-00", err: outOfRange},
		{in: "2026-13", err: outOfRange},
		{in: "2026-99", err: outOfRange},
		{in: "0000-05", err: outOfRange},
		{in: "2025-1", err: malformed},
		{in: "26-11", err: malformed},
		{in: "2026-011", err: malformed},
		{in: "2026-13x", err: malformed},
		{in: "2026/11", err: malformed},
		{in: " 2026-11", err: malformed},
		{in: "2026-11 ", err: malformed},
		{in: "2026-11\n", err: malformed},
		{in: "+026-11", err: malformed},
		{in: "-026-11", err: malformed},
		{in: "２０２６-11", err: malformed},
		{in: "2026-11-01", err: malformed},
		{in: "", err: malformed},
	}
	for _, tc := range cases {
		y, m, err := calendar.ParseYearMonth(tc.in)
		if tc.err != "" {
			require.EqualError(t, err, tc.err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		require.Equal(t, [2]int{tc.year, tc.month}, [2]int{y, m}, "%q", tc.in)
		require.Equal(t, tc.in, calendar.FormatYearMonth(y, m), "formats back")
	}
}

func TestMonthBoundsAreMidnightsInTheZone(t *testing.T) {
	t.Parallel()
	seoul, berlin := zone(t, "Asia/Seoul"), zone(t, "Europe/Berlin")
	cases := []struct {
		year, month int
		tz          *time.Location
		start, end  string // RFC 3339 in UTC
	}{
		{2026, 11, seoul, "2026-10-31T15:00:00Z", "2026-11-30T15:00:00Z"},
		{2026, 12, seoul, "2026-11-30T15:00:00Z", "2026-12-31T15:00:00Z"}, // into next year
		{2024, 2, seoul, "2024-01-31T15:00:00Z", "2024-02-29T15:00:00Z"},  // leap year
		{2026, 3, berlin, "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z"}, // summer time starts in March
		{2026, 11, time.UTC, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
	}
	for _, tc := range cases {
		start, end := calendar.MonthBounds(tc.year, tc.month, tc.tz)
		require.Equal(t, tc.start, start.UTC().Format(time.RFC3339), "%04d-%02d in %s", tc.year, tc.month, tc.tz)
		require.Equal(t, tc.end, end.UTC().Format(time.RFC3339), "%04d-%02d in %s", tc.year, tc.month, tc.tz)
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"2026-11-20", "2024-02-29", "2026-12-31", "0000-01-01"} {
		d, err := calendar.ParseDate(ok)
		require.NoError(t, err, ok)
		require.Equal(t, ok, d.Format(time.DateOnly))
	}
	for _, bad := range []string{"2026-02-29", "2026-13-01", "2026-12-32", "2026-1-2", "20261120", " 2026-11-20", "2026-11-20 ", "2026-11", ""} {
		_, err := calendar.ParseDate(bad)
		require.EqualError(t, err, `date "`+bad+`": want YYYY-MM-DD, like 2026-11-20`, bad)
	}
}

func TestBusinessDateIsTheDateInTheZone(t *testing.T) {
	t.Parallel()
	seoul := zone(t, "Asia/Seoul")
	cases := []struct {
		at   time.Time
		tz   *time.Location
		want string
	}{
		// 15:00 UTC is midnight in Seoul: already the next day there.
		{time.Date(2026, 11, 30, 14, 59, 59, 0, time.UTC), seoul, "2026-11-30"},
		{time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC), seoul, "2026-12-01"},
		{time.Date(2026, 12, 31, 15, 0, 0, 0, time.UTC), seoul, "2027-01-01"},
		{time.Date(2026, 12, 31, 15, 0, 0, 0, time.UTC), time.UTC, "2026-12-31"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, calendar.BusinessDate(tc.at, tc.tz), "%s in %s", tc.at, tc.tz)
	}
}

func TestNextBusinessDate(t *testing.T) {
	t.Parallel()
	seoul, berlin := zone(t, "Asia/Seoul"), zone(t, "Europe/Berlin")
	cases := []struct {
		now  time.Time
		tz   *time.Location
		want string
	}{
		{time.Date(2026, 11, 20, 10, 0, 0, 0, seoul), seoul, "2026-11-21"},
		// 23:30 UTC on 20 November is 08:30 on the 21st in Seoul.
		{time.Date(2026, 11, 20, 23, 30, 0, 0, time.UTC), seoul, "2026-11-22"},
		{time.Date(2026, 12, 31, 23, 59, 0, 0, seoul), seoul, "2027-01-01"},
		{time.Date(2024, 2, 28, 12, 0, 0, 0, seoul), seoul, "2024-02-29"},
		// 29 March 2026 has 23 hours in Berlin: tomorrow is a calendar day
		// later, not 24 hours later.
		{time.Date(2026, 3, 28, 23, 30, 0, 0, berlin), berlin, "2026-03-29"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, calendar.NextBusinessDate(tc.now, tc.tz), "%s in %s", tc.now, tc.tz)
	}
}

func TestDayAfter(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"2026-11-20", "2026-11-21"},
		{"2026-11-30", "2026-12-01"},
		{"2026-12-31", "2027-01-01"},
		{"2024-02-28", "2024-02-29"},
		{"2026-02-28", "2026-03-01"},
	}
	for _, tc := range cases {
		got, err := calendar.DayAfter(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	_, err := calendar.DayAfter("2026-02-30")
	require.EqualError(t, err, `date "2026-02-30": want YYYY-MM-DD, like 2026-11-20`)
}

// ValidYearMonth accepts what ParseYearMonth parses, and nothing else.
func TestValidYearMonth(t *testing.T) {
	t.Parallel()
	for _, ym := range [][2]int{{1, 1}, {2026, 11}, {9999, 12}} {
		require.True(t, calendar.ValidYearMonth(ym[0], ym[1]), "%v", ym)
		y, m, err := calendar.ParseYearMonth(calendar.FormatYearMonth(ym[0], ym[1]))
		require.NoError(t, err)
		require.Equal(t, ym, [2]int{y, m})
	}
	for _, ym := range [][2]int{{0, 5}, {2026, 0}, {2026, 13}, {10000, 1}, {-1, 1}} {
		require.False(t, calendar.ValidYearMonth(ym[0], ym[1]), "%v", ym)
	}
}

func TestFirstOfMonthAndLastMonthEnd(t *testing.T) {
	t.Parallel()
	for d, want := range map[string]string{"2026-12-05": "2026-12-01", "2026-12-01": "2026-12-01", "2024-02-29": "2024-02-01"} {
		got, err := calendar.FirstOfMonth(d)
		require.NoError(t, err)
		require.Equal(t, want, got, d)
	}
	_, err := calendar.FirstOfMonth("2026-13-01")
	require.Error(t, err)

	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	// 2026-03-01 00:30 in Seoul is still February in UTC: the month that
	// is over is the one before March, in Seoul.
	require.Equal(t, "2026-02-28", calendar.LastMonthEnd(time.Date(2026, 2, 28, 15, 30, 0, 0, time.UTC), seoul))
	require.Equal(t, "2026-01-31", calendar.LastMonthEnd(time.Date(2026, 2, 28, 15, 30, 0, 0, time.UTC), time.UTC))
	require.Equal(t, "2025-12-31", calendar.LastMonthEnd(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC))
}
