package bulk_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/bulk"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// A --since/--until value is an instant, the same for either bound, or a
// business date, whose bounds are its midnight and the next in BATCH_TZ;
// anything else is refused naming the value and the two forms.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-20", "2026-11-20T09:00:00+09:00", "2026-11-20T00:00:00Z", "2026-11-20T09:00:00.123456789-03:30",
		"2026-02-29", "2026-11-20 09:00", "20261120", "yesterday", "", "2026-11-20T09:00:00"} {
		f.Add(s)
	}
	tz := testkit.TZ()
	f.Fuzz(func(t *testing.T, s string) {
		lower, errL := bulk.ParseTime(s, tz, false)
		upper, errU := bulk.ParseTime(s, tz, true)
		require.Equal(t, errL == nil, errU == nil)
		if errL != nil {
			require.ErrorContains(t, errL, "want an RFC 3339 timestamp")
			require.ErrorContains(t, errL, "or a date YYYY-MM-DD in Asia/Seoul")
			return
		}
		if len(s) == len(time.DateOnly) {
			require.Equal(t, s, lower.In(tz).Format(time.DateOnly))
			require.Equal(t, "00:00:00", lower.In(tz).Format(time.TimeOnly))
			require.Equal(t, lower.In(tz).AddDate(0, 0, 1), upper.In(tz))
			return
		}
		require.True(t, lower.Equal(upper), "an instant bounds both sides alike")
	})
}

// A date bound covers the whole business day in BATCH_TZ, not the UTC day.
func TestParseTimeDateIsTheBusinessDay(t *testing.T) {
	t.Parallel()
	since, err := bulk.ParseTime("2026-11-20", testkit.TZ(), false)
	require.NoError(t, err)
	until, err := bulk.ParseTime("2026-11-20", testkit.TZ(), true)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 19, 15, 0, 0, 0, time.UTC), since.UTC())
	require.Equal(t, time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC), until.UTC())
}
