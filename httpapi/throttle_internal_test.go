package httpapi

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A table filled with other addresses does not let a new one fail without
// limit: untracked addresses share one count, throttled like an address.
func TestThrottleWhenTheTableIsFull(t *testing.T) {
	t.Parallel()
	var th failureThrottle
	for i := range maxTracked {
		th.fail(kindMember, fmt.Sprintf("2001:db8:%x::/64", i))
	}
	for i := range maxFailures {
		_, over := th.over(kindOperator, "192.0.2.1")
		require.False(t, over, i)
		th.fail(kindOperator, "192.0.2.1")
	}
	wait, over := th.over(kindOperator, "192.0.2.1")
	require.True(t, over, "the guesser is throttled although the table was full")
	require.Positive(t, wait)
	_, over = th.over(kindOperator, "192.0.2.2")
	require.True(t, over, "so is every address the table cannot hold, until the window ends")
	_, over = th.over(kindMember, "2001:db8:5::/64")
	require.False(t, over, "a tracked address keeps its own count")
}
