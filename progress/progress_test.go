package progress_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/progress"
)

var opts = progress.Options{LineEvery: 2 * time.Second, BarEvery: 500 * time.Millisecond}

// The bar counts done of a total that may grow, is described by the status,
// and is redrawn at most every BarEvery.
func TestBarDrawsProgress(t *testing.T) {
	t.Parallel()
	var out, term bytes.Buffer
	d := progress.NewBar(&out, &term, "jobs", opts)
	now := time.Now()
	d.Status(now, 0, 10, "0 of 10", "point_settlement #7 400/1000 rows (40%)")
	require.False(t, d.Due(now.Add(opts.BarEvery/2)))
	require.True(t, d.Due(now.Add(opts.BarEvery)))
	d.Status(now.Add(opts.BarEvery), 6, 12, "6 of 12", "2 therapy_stats running")
	require.Contains(t, term.String(), "point_settlement #7 400/1000 rows (40%)")
	require.Contains(t, term.String(), "2 therapy_stats running")
	require.Contains(t, term.String(), "6/12")
	require.Empty(t, out.String(), "a status goes to the bar only")
	require.True(t, d.Shown())

	// An event is a line of its own on out, and the bar is drawn again at
	// once after it.
	d.Event("2026-09-03: completed (job %d)", 812)
	require.Equal(t, "2026-09-03: completed (job 812)\n", out.String())
	require.True(t, d.Due(now.Add(opts.BarEvery)))
	d.Stop()
}

// Without a terminal: a status line at most every LineEvery, counted from
// the last line of any kind; a quiet display holds its first one back.
func TestLinesAreRateLimited(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	d := progress.NewLines(&out, opts)
	now := time.Now()
	require.False(t, d.Shown())
	d.Status(now, 1, 3, "waiting: 1 of 3 done", "ignored without a bar")
	d.Status(now.Add(time.Second), 2, 3, "waiting: 2 of 3 done", "")
	d.Status(now.Add(opts.LineEvery), 3, 3, "waiting: 3 of 3 done", "")
	require.Equal(t, "waiting: 1 of 3 done\nwaiting: 3 of 3 done\n", out.String())
	require.True(t, d.Shown())

	out.Reset()
	quiet := progress.NewLines(&out, progress.Options{LineEvery: time.Hour, Quiet: true})
	quiet.Status(time.Now(), 0, 1, "nothing yet", "")
	quiet.Event("an event")
	quiet.Status(time.Now().Add(59*time.Minute), 0, 1, "still nothing", "")
	require.Equal(t, "an event\n", out.String())
	quiet.Status(time.Now().Add(61*time.Minute), 0, 1, "waiting: heartbeat", "")
	require.True(t, strings.HasSuffix(out.String(), "waiting: heartbeat\n"))
}
