package testkit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// Poll returns once the condition holds, and on a deadline names the
// condition's last error.
func TestPoll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	calls := 0
	require.NoError(t, testkit.Poll(ctx, time.Millisecond, func() (bool, error) {
		calls++
		return calls == 3, nil
	}))
	require.Equal(t, 3, calls)

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err := testkit.Poll(short, time.Millisecond, func() (bool, error) { return true, errors.New("service down") })
	require.ErrorIs(t, err, context.DeadlineExceeded, "an error is not yet, even with true")
	require.ErrorContains(t, err, "last error: service down")
}

// The test time zone is the batches' default, nine hours east of UTC.
func TestTZ(t *testing.T) {
	t.Parallel()
	require.Equal(t, "Asia/Seoul", testkit.TZ().String())
	_, offset := time.Date(2026, 1, 1, 0, 0, 0, 0, testkit.TZ()).Zone()
	require.Equal(t, 9*3600, offset)
}
