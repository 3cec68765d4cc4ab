package store_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/store"
)

// A year-month either parses into a month in 01..12 that formats back to the
// same text, or is refused with an error saying what is wanted.
func FuzzParseYearMonth(f *testing.F) {
	for _, s := range []string{"2026-11", "0001-01", "2026-00", "2026-13", "26-11", "2026-1", "2026/11", "", "２０２６-11"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, m, err := store.ParseYearMonth(s)
		if err != nil {
			require.ErrorContains(t, err, "YYYY-MM")
			return
		}
		require.True(t, m >= 1 && m <= 12, "month %d", m)
		require.Equal(t, s, fmt.Sprintf("%04d-%02d", y, m))
	})
}
