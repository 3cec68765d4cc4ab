package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/report"
)

// An ids list either parses into distinct positive ids, which joined again
// parse to the same ids, or is refused as a usage error naming the flag.
func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{"1", "1,2,3", " 4 , 5,4", "", ",", "0", "-1", "abc", "1,,2", "9223372036854775808", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseIDs("user", s)
		if err != nil {
			var ue usageError
			require.ErrorAs(t, err, &ue)
			require.Contains(t, err.Error(), "--user")
			return
		}
		seen := map[int64]bool{}
		for _, id := range ids {
			require.Positive(t, id)
			require.False(t, seen[id], "id %d twice", id)
			seen[id] = true
		}
		again, err := parseIDs("user", report.IDs(ids))
		require.NoError(t, err)
		require.Equal(t, ids, again)
	})
}
