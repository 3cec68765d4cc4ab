package calendar_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
)

func TestDatesAndMonths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		first, last string
		dates       []string
		months      []string
	}{
		{"2026-11-29", "2026-12-02", []string{"2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"}, []string{"2026-11", "2026-12"}},
		{"2024-02-28", "2024-03-01", []string{"2024-02-28", "2024-02-29", "2024-03-01"}, []string{"2024-02", "2024-03"}},
		{"2026-01-31", "2026-01-31", []string{"2026-01-31"}, []string{"2026-01"}},
		{"2026-12-31", "2026-01-01", nil, nil},
	} {
		first, err := calendar.ParseDate(tc.first)
		require.NoError(t, err)
		last, err := calendar.ParseDate(tc.last)
		require.NoError(t, err)
		require.Equal(t, tc.dates, calendar.Dates(first, last), "%s..%s", tc.first, tc.last)
		require.Equal(t, tc.months, calendar.Months(first, last), "%s..%s", tc.first, tc.last)
	}
	// From a 31st, the next month is February, not March (AddDate would normalise 31 February).
	first, _ := calendar.ParseDate("2026-01-31")
	last, _ := calendar.ParseDate("2026-04-01")
	require.Equal(t, []string{"2026-01", "2026-02", "2026-03", "2026-04"}, calendar.Months(first, last))
}
