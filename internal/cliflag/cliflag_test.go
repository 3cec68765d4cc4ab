package cliflag_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/report"
)

// An ids list either parses into distinct positive ids, which joined again
// parse to the same ids, or is refused as a usage error naming the flag.
func FuzzIDs(f *testing.F) {
	for _, s := range []string{"1", "1,2,3", " 4 , 5,4", "", ",", "0", "-1", "abc", "1,,2", "9223372036854775808", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := cliflag.IDs("user", s)
		if err != nil {
			var ue *cliflag.UsageError
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
		again, err := cliflag.IDs("user", report.IDs(ids))
		require.NoError(t, err)
		require.Equal(t, ids, again)
	})
}

// A date flag: required, or its default when not given; a bad one is a
// usage error naming the flag.
func TestDate(t *testing.T) {
	t.Parallel()
	v := ""
	require.EqualError(t, cliflag.Date("to", &v, ""), "--to is required (YYYY-MM-DD)")
	require.NoError(t, cliflag.Date("on", &v, "2026-12-08"))
	require.Equal(t, "2026-12-08", v)
	v = "2026-02-30"
	err := cliflag.Date("date", &v, "")
	var ue *cliflag.UsageError
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, "--date: ")
}

// --help prints the flags, showing only the defaults that mean something,
// and a stray argument is a usage error.
func TestParse(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	fs := cliflag.NewFlagSet("settlement", &out)
	fs.String("date", "", "business date (required)")
	fs.Int("commit-interval", 1000, "rows per chunk")
	fs.Bool("rerun", false, "run again")
	require.ErrorIs(t, cliflag.Parse("enqueue", fs, []string{"--help"}), cliflag.ErrHelp)
	require.Equal(t, "usage of enqueue settlement:\n"+
		"  --commit-interval int\n    \trows per chunk (default 1000)\n"+
		"  --date string\n    \tbusiness date (required)\n"+
		"  --rerun\n    \trun again\n", out.String())
	err := cliflag.Parse("enqueue", cliflag.NewFlagSet("status", &out), []string{"extra"})
	require.EqualError(t, err, `unexpected argument "extra"`)
}
