package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// A settled date's line shows the run's state and the counts its job and the
// settlement recorded; the dates before it show nothing ran.
func TestRunsPrintsASettledDate(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	today := calendar.BusinessDate(time.Now(), b.tz)
	_, err := b.st.InsertLedger(context.Background(), []store.LedgerEntry{
		{MemberID: 1, Kind: "EARN", Amount: 10, OccurredAt: time.Now().Add(-48 * time.Hour)},
		{MemberID: 1, Kind: "USE", Amount: 4, OccurredAt: time.Now().Add(-47 * time.Hour)}}, b.tz)
	require.NoError(t, err)
	code, stdout, stderr := b.enqueue("settlement", "--date", today)
	require.Equal(t, 0, code, stderr)
	id := jobIDFrom(t, stdout)
	b.startWorker(t)
	b.waitState(t, id, "completed")

	code, stdout, stderr = b.enqueue("runs", "--days", "3")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 1+3*len(store.BatchKinds), stdout)
	require.Equal(t, []string{"DATE", "BATCH", "STATE", "COUNTS", "DURATION", "FAILURES", "JOBS"}, strings.Fields(lines[0]))

	var read, written, skipped, items int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT e.read_count, e.write_count, e.skip_count, p.item_count
		FROM batch_job_execution e JOIN point_daily_settlement p ON p.job_id = e.job_execution_id
		WHERE e.job_execution_id = $1`, id).Scan(&read, &written, &skipped, &items))
	require.Equal(t, int64(2), items)
	var settled string
	for _, l := range lines {
		if strings.HasPrefix(l, today+" ") && strings.Contains(l, " settlement ") {
			settled = l
		}
	}
	f := strings.Fields(settled)
	require.GreaterOrEqual(t, len(f), 10, stdout)
	require.Equal(t, []string{today, "settlement", "completed",
		"runs=1", fmt.Sprintf("read=%d", read), fmt.Sprintf("written=%d", written), fmt.Sprintf("skipped=%d", skipped), fmt.Sprintf("items=%d", items)}, f[:8])
	require.Equal(t, "0", f[9], settled)
	require.Equal(t, fmt.Sprint(id), f[len(f)-1], settled)
	// Nothing else ran: every other batch and date is "-".
	for _, l := range lines[1:] {
		if l != settled {
			require.Equal(t, "-", strings.Fields(l)[2], l)
		}
	}
}

func TestRunsRefusesBadFlags(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"runs", "--days", "0"}, "--days: 0 is out of range; want 1 to 366"},
		{[]string{"runs", "--days", "367"}, "--days: 367 is out of range"},
		{[]string{"runs", "--days", "two"}, `invalid value "two" for flag -days`},
		{[]string{"runs", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := b.enqueue(tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%v: %q", tc.args, stderr)
		require.Contains(t, stderr, "enqueue runs: "+tc.want, tc.args)
	}
}
