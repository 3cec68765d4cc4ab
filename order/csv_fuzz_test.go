package order_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/usertext"
)

// An orders file either parses into valid requests whose every field is
// safe text (package usertext) on a line within the limit, which written
// back as CSV parse to the same requests, or is refused with an error; never
// a panic.
func FuzzReadCSV(f *testing.F) {
	f.Add("username,total_price,applied_year_month\ntester,10000,2025-02\n")
	f.Add("\ufeffusername, total_price ,applied_year_month\n \"kim, jr\", 500 , 2025-03\n\n")
	f.Add("username,total_price,applied_year_month\n김철수,10000,2025-02\n\U0001F469\u200d\U0001F4BB,1,2025-03\n")
	for _, c := range badOrderFiles {
		f.Add(c.content)
	}
	f.Fuzz(func(t *testing.T, content string) {
		reqs, lines, err := order.ReadCSV(strings.NewReader(content))
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
			require.LessOrEqual(t, len(line), order.MaxCSVLineBytes, "line %d", i+1)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		require.NoError(t, w.Write(strings.Split(order.CSVHeader, ",")))
		for _, r := range reqs {
			require.NoError(t, w.Write([]string{r.Username, fmt.Sprint(r.TotalPrice), r.AppliedYearMonth}))
		}
		w.Flush()
		again, _, err := order.ReadCSV(&buf)
		require.NoError(t, err, "re-encoded %q", buf.String())
		require.Equal(t, reqs, again)
	})
}
