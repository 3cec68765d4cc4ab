package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/jobs"
)

// On a terminal the bar counts jobs finished of the most outstanding and is
// described by the running jobs' progress.
func TestWaitBarDrawsProgress(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	b := &waitBar{w: &out, every: waitBarEvery}
	now := time.Now()
	running := []jobs.RunningProgress{
		{Kind: "point_settlement", JobID: 7, Recorded: true, Progress: jobs.Progress{Done: 400, Total: 1000, Unit: "rows"}},
		{Kind: "therapy_stats", JobID: 8}, {Kind: "therapy_stats", JobID: 9},
	}
	b.show(now, 10, running)
	require.False(t, b.due(now.Add(waitBarEvery/2)))
	require.True(t, b.due(now.Add(waitBarEvery)))
	b.show(now.Add(waitBarEvery), 4, running)
	require.Contains(t, out.String(), "point_settlement #7 400/1000 rows (40%); 2 therapy_stats running")
	require.Contains(t, out.String(), "6/10")
	b.finish(time.Second)
	require.Contains(t, out.String(), "waited 1s: no job outstanding\n")
}
