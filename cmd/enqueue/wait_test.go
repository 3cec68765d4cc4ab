package main_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// With stdout a pipe, wait writes plain lines: the outstanding jobs and the
// progress a running job records on itself.
func TestWaitPrintsProgressLinesWhenNotATerminal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _, stderr := b.run(t, "therapy-stats", "--month", "2026-11", "--user", "1,2")
	require.Equal(t, 0, code, stderr)
	// One of them is running and has recorded its progress, as a worker
	// does through Client.JobUpdate.
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(),
		       metadata = metadata || '{"output": {"progress": {"done": 40, "total": 100, "unit": "rows",
		           "rate_per_s": 5, "eta": "2026-12-02T05:43:10Z", "updated_at": "2026-12-02T05:43:00Z"}}}'
		WHERE id = (SELECT min(id) FROM river_job) RETURNING id`).Scan(&id))

	code, stdout, stderr := b.run(t, "wait", "--timeout", "300ms")
	require.Equal(t, 1, code, "nothing works these jobs: wait gives up")
	require.Contains(t, stderr, "2 job(s) still outstanding")
	require.Contains(t, stdout, fmt.Sprintf(
		"waiting: 2 job(s) outstanding; therapy_stats #%d 40/100 rows (40%%), 5 rows/s, done ~14:43:10 KST\n", id), "05:43:10Z in BATCH_TZ, Asia/Seoul")
	require.NotContains(t, stdout, "\r", "no bar drawn into a pipe")
}

// Nothing outstanding: wait returns at once and says nothing.
func TestWaitQuietWhenNothingOutstanding(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, stdout, stderr := b.run(t, "wait", "--timeout", "1s")
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stdout)
}
