package jobs

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// The stage timer reports each stage's mean over the attempts that reached
// it, and the time spent in Work in all; a nil timer, as in the binaries,
// records nothing and does not panic.
func TestOrderStageTimesMeans(t *testing.T) {
	var none *OrderStageTimes
	none.add(stageClaim, none.start())

	s := &OrderStageTimes{}
	fetched := time.Now().Add(-3 * time.Millisecond)
	for range 2 {
		done := s.begin(&river.Job[OrderSubmitArgs]{JobRow: &rivertype.JobRow{AttemptedAt: &fetched}})
		s.add(stageClaim, time.Now().Add(-2*time.Millisecond))
		done()
	}
	s.add(stageCall, time.Now().Add(-20*time.Millisecond)) // one attempt got as far as the call

	got := s.Snapshot()
	require.Equal(t, int64(2), got.Attempts)
	require.GreaterOrEqual(t, got.FetchToWork, 3*time.Millisecond)
	require.Less(t, got.FetchToWork, time.Second)
	require.GreaterOrEqual(t, got.Claim, 2*time.Millisecond)
	require.Less(t, got.Claim, time.Second)
	require.GreaterOrEqual(t, got.Call, 20*time.Millisecond, "the call's mean is over the one attempt that made it")
	require.Zero(t, got.Apply, "no attempt reached the apply")
	require.Less(t, got.InWork, time.Second)
}
