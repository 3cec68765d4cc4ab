package calendar_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
)

// A year-month either parses into a month in 01..12 that formats back to the
// same text, or is refused with an error saying what is wanted.
func FuzzParseYearMonth(f *testing.F) {
	for _, s := range []string{"2026-11", "0001-01", "2026-00", "2026-13", "26-11", "2026-1", "2026/11", "", "２０２６-11"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, m, err := calendar.ParseYearMonth(s)
		if err != nil {
			require.ErrorContains(t, err, "YYYY-MM")
			return
		}
		require.True(t, m >= 1 && m <= 12, "month %d", m)
		require.Equal(t, s, calendar.FormatYearMonth(y, m))
	})
}

// A business date either parses and formats back to the same text, or is
// refused with an error naming the format; never a panic.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-11-20", "2024-02-29", "2026-02-29", "2026-13-01", "20261120", "2026-1-2", "", "0000-01-01", " 2026-11-20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := calendar.ParseDate(s)
		if err != nil {
			require.ErrorContains(t, err, "want YYYY-MM-DD")
			return
		}
		require.Equal(t, s, d.Format("2006-01-02"))
	})
}
