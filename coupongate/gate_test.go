package coupongate_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

func TestIssueOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _, _ := testredis.Gate(t)

	res, err := g.Issue(ctx, "C1", 1)
	require.NoError(t, err)
	require.Equal(t, coupongate.NotLoaded, res)

	stock, err := g.Load(ctx, "C1", 2, nil)
	require.NoError(t, err)
	require.EqualValues(t, 2, stock)

	for _, want := range []struct {
		member int64
		res    coupongate.Result
	}{{1, coupongate.Issued}, {1, coupongate.AlreadyIssued}, {2, coupongate.Issued}, {3, coupongate.SoldOut}} {
		res, err := g.Issue(ctx, "C1", want.member)
		require.NoError(t, err)
		require.Equal(t, want.res, res, "member %d", want.member)
	}
	st, err := g.State(ctx, "C1")
	require.NoError(t, err)
	require.True(t, st.Loaded)
	require.EqualValues(t, 0, st.Stock)
	require.ElementsMatch(t, []int64{1, 2}, st.Members)

	// Undo gives exactly one seat back, however often it runs.
	for i := 0; i < 2; i++ {
		_, err := g.Undo(ctx, "C1", 2)
		require.NoError(t, err)
	}
	st, err = g.State(ctx, "C1")
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Stock)
	require.ElementsMatch(t, []int64{1}, st.Members)

	res, err = g.Issue(ctx, "C1", 3)
	require.NoError(t, err)
	require.Equal(t, coupongate.Issued, res)
}

func TestConcurrentIssueNeverOversells(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _, _ := testredis.Gate(t)
	_, err := g.Load(ctx, "RUSH", 50, nil)
	require.NoError(t, err)

	var issued, soldOut atomic.Int64
	var wg sync.WaitGroup
	for m := int64(1); m <= 1000; m++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := g.Issue(ctx, "RUSH", m)
			if err != nil {
				t.Error(err)
				return
			}
			switch res {
			case coupongate.Issued:
				issued.Add(1)
			case coupongate.SoldOut:
				soldOut.Add(1)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 50, issued.Load())
	require.EqualValues(t, 950, soldOut.Load())
	st, err := g.State(ctx, "RUSH")
	require.NoError(t, err)
	require.EqualValues(t, 0, st.Stock)
	require.Len(t, st.Members, 50)
}

func TestLoadKeepsMembersAndResyncsStock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _, _ := testredis.Gate(t)
	_, err := g.Load(ctx, "L", 10, []int64{1, 2})
	require.NoError(t, err)
	_, err = g.Issue(ctx, "L", 3)
	require.NoError(t, err)

	// A rebuild from the database (which does not know member 3 yet) keeps 3.
	stock, err := g.Load(ctx, "L", 10, []int64{1, 2, 4})
	require.NoError(t, err)
	require.EqualValues(t, 6, stock)
	st, err := g.State(ctx, "L")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{1, 2, 3, 4}, st.Members)

	require.NoError(t, g.Unload(ctx, "L"))
	st, err = g.State(ctx, "L")
	require.NoError(t, err)
	require.False(t, st.Loaded)
	require.Empty(t, st.Members)
}

func TestCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _, _ := testredis.Gate(t)

	c, err := g.Counts(ctx, "C1")
	require.NoError(t, err)
	require.Equal(t, coupongate.Counts{}, c, "not loaded")

	_, err = g.Load(ctx, "C1", 5, []int64{7, 8})
	require.NoError(t, err)
	_, err = g.Issue(ctx, "C1", 9)
	require.NoError(t, err)
	c, err = g.Counts(ctx, "C1")
	require.NoError(t, err)
	require.Equal(t, coupongate.Counts{Loaded: true, Stock: 2, Issued: 3}, c)
}
