package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/report"
	"github.com/tidemark/tidemark/usertext"
)

// An orders file either parses into valid requests whose every field is
// safe text (package usertext) on a line within the limit, which written
// back as CSV parse to the same requests, or is refused with an error; never
// a panic.
func FuzzParseOrderCSV(f *testing.F) {
	f.Add("username,total_price,applied_year_month\ntester,10000,2025-02\n")
	f.Add("\ufeffusername, total_price ,applied_year_month\n \"kim, jr\", 500 , 2025-03\n\n")
	f.Add("username,total_price,applied_year_month\n김철수,10000,2025-02\n\U0001F469\u200d\U0001F4BB,1,2025-03\n")
	for _, c := range badOrderFiles {
		f.Add(c.content)
	}
	f.Fuzz(func(t *testing.T, content string) {
		reqs, lines, err := parseOrderCSV(strings.NewReader(content))
		if err != nil {
			require.Empty(t, reqs)
			require.NotEmpty(t, err.Error())
			return
		}
		require.NotEmpty(t, reqs)
		require.Len(t, lines, len(reqs))
		for _, r := range reqs {
			require.NoError(t, r.Validate())
			for _, field := range []string{r.Username, fmt.Sprint(r.TotalPrice), r.AppliedYearMonth} {
				require.NoError(t, usertext.Check(field), "%q", field)
			}
		}
		for i, line := range strings.Split(content, "\n") {
			require.LessOrEqual(t, len(line), maxOrderLineBytes, "line %d", i+1)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		require.NoError(t, w.Write(strings.Split(orderCSVHeader, ",")))
		for _, r := range reqs {
			require.NoError(t, w.Write([]string{r.Username, fmt.Sprint(r.TotalPrice), r.AppliedYearMonth}))
		}
		w.Flush()
		again, _, err := parseOrderCSV(&buf)
		require.NoError(t, err, "re-encoded %q", buf.String())
		require.Equal(t, reqs, again)
	})
}

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
