package report_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/report"
)

// Running describes the running jobs that record their progress by name, the
// others counted by kind.
func TestRunning(t *testing.T) {
	t.Parallel()
	eta := time.Date(2026, 12, 1, 14, 43, 10, 0, time.FixedZone("KST", 9*3600))
	running := []jobs.RunningProgress{
		{Kind: "point_settlement", JobID: 7, Recorded: true, Progress: jobs.Progress{Done: 400, Total: 1000, Unit: "rows", ETA: &eta}},
		{Kind: "therapy_stats", JobID: 8}, {Kind: "therapy_stats", JobID: 9},
	}
	require.Equal(t, "point_settlement #7 400/1000 rows (40%), done ~14:43:10 KST; 2 therapy_stats running", report.Running(running))
}
