package jobs_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/jobs"
)

// A business date either parses and formats back to the same text, or is
// refused with an error naming the format; never a panic.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-11-20", "2024-02-29", "2026-02-29", "2026-13-01", "20261120", "2026-1-2", "", "0000-01-01", " 2026-11-20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := jobs.ParseDate(s)
		if err != nil {
			require.ErrorContains(t, err, "want YYYY-MM-DD")
			return
		}
		require.Equal(t, s, d.Format("2006-01-02"))
	})
}
