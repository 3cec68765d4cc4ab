package coupongate_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// A member gets N requests at once, then waits Period/N for each next one;
// a request past the allowance touches no seat. Allow and IssueWithin spend
// one allowance.
func TestMemberAllowance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _, _ := testredis.Gate(t)
	_, err := g.Load(ctx, "LIM", 10, nil)
	require.NoError(t, err)
	lim := coupongate.Limit{N: 3, Period: time.Minute}

	ok, _, err := g.Allow(ctx, 7, lim)
	require.NoError(t, err)
	require.True(t, ok)
	res, _, err := g.IssueWithin(ctx, "LIM", 7, lim)
	require.NoError(t, err)
	require.Equal(t, coupongate.Issued, res)
	res, _, err = g.IssueWithin(ctx, "LIM", 7, lim)
	require.NoError(t, err)
	require.Equal(t, coupongate.AlreadyIssued, res)
	res, wait, err := g.IssueWithin(ctx, "LIM", 7, lim)
	require.NoError(t, err)
	require.Equal(t, coupongate.RateLimited, res)
	require.InDelta(t, (20 * time.Second).Seconds(), wait.Seconds(), 1, "one more request every 20 s")
	ok, wait, err = g.Allow(ctx, 7, lim)
	require.NoError(t, err)
	require.False(t, ok)
	require.Positive(t, wait)

	// Another member's allowance is their own; the refused requests took
	// no seat.
	res, _, err = g.IssueWithin(ctx, "LIM", 8, lim)
	require.NoError(t, err)
	require.Equal(t, coupongate.Issued, res)
	st, err := g.State(ctx, "LIM")
	require.NoError(t, err)
	require.EqualValues(t, 8, st.Stock)
	require.ElementsMatch(t, []int64{7, 8}, st.Members)

	// A zero limit is no limit.
	for range 5 {
		res, _, err = g.IssueWithin(ctx, "LIM", 9, coupongate.Limit{})
		require.NoError(t, err)
		require.NotEqual(t, coupongate.RateLimited, res)
	}
}

// Concurrent requests of one member never get more than the allowance.
func TestMemberAllowanceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _, _ := testredis.Gate(t)
	_, err := g.Load(ctx, "CONC", 1000, nil)
	require.NoError(t, err)
	lim := coupongate.Limit{N: 5, Period: time.Hour}
	var mu sync.Mutex
	byResult := map[coupongate.Result]int{}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, _, err := g.IssueWithin(ctx, "CONC", 42, lim)
			require.NoError(t, err)
			mu.Lock()
			byResult[res]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, map[coupongate.Result]int{coupongate.Issued: 1, coupongate.AlreadyIssued: 4, coupongate.RateLimited: 95}, byResult)
}
