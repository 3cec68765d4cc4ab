package combine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Jobs arriving while a batch runs are combined into the next batch, every
// caller gets its own key's outcome, and a failing batch is retried key by key.
func TestCombinerBatchesAndIsolatesFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var batches [][]int
	release := make(chan struct{})
	c := New(1, 100, func(_ context.Context, keys []int) error {
		mu.Lock()
		batches = append(batches, append([]int(nil), keys...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release // hold the only flusher so the others queue up
		}
		for _, k := range keys {
			if k == 13 {
				return errors.New("key 13 fails")
			}
		}
		return nil
	})
	errs := make([]error, 21)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = c.Do(context.Background(), 0) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 }, 5*time.Second, time.Millisecond)
	for k := 1; k <= 20; k++ {
		wg.Add(1)
		go func(k int) { defer wg.Done(); errs[k] = c.Do(context.Background(), k) }(k)
	}
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == 20 }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()

	for k, err := range errs {
		if k == 13 {
			require.EqualError(t, err, "key 13 fails")
		} else {
			require.NoError(t, err, "key %d", k)
		}
	}
	require.Equal(t, []int{0}, batches[0])
	require.Len(t, batches[1], 20, "the 20 waiting keys ran as one batch")
	require.Len(t, batches, 2+20, "the failed batch was retried one key at a time")
}

// With a linger, the job given the slot waits before taking its batch, and
// the keys that arrive meanwhile run with its own: one batch, not two.
func TestCombinerLingerGathersOneBatch(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var batches [][]int
	var c *Combiner[int]
	c = New(1, 100, func(_ context.Context, keys []int) error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, append([]int(nil), keys...))
		return nil
	}).WithLinger(func() time.Duration {
		// Called by the first job, holding the slot: linger until the other
		// nine have arrived (the test's stand-in for "long enough"), then
		// for a millisecond more on the timer.
		require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == 10 }, 5*time.Second, time.Millisecond)
		return time.Millisecond
	})
	var wg sync.WaitGroup
	for k := range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, c.Do(context.Background(), k)) }()
	}
	wg.Wait()
	require.Len(t, batches, 1, "the keys that arrived during the linger joined the first batch")
	require.ElementsMatch(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, batches[0])
}

// A job whose context ends before its key is in a batch leaves at once.
func TestCombinerWaiterLeavesOnCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ran := make(chan int, 10)
	c := New(1, 100, func(_ context.Context, keys []int) error {
		for _, k := range keys {
			ran <- k
		}
		if keys[0] == 1 {
			<-release
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- c.Do(context.Background(), 1) }()
	require.Equal(t, 1, <-ran)

	ctx, cancel := context.WithCancel(context.Background())
	waiter := make(chan error, 1)
	go func() { waiter <- c.Do(ctx, 2) }()
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-waiter, context.Canceled)
	close(release)
	require.NoError(t, <-done)
	require.Empty(t, ran, "the cancelled key never ran")
}

// A job given a flusher slot can have its key taken by another slot's batch
// before it wakes; it must pass that slot on, not keep it. Kept slots
// accumulated until none was left and every later job waited forever.
func TestCombinerNeverLosesASlot(t *testing.T) {
	t.Parallel()
	c := New(4, 3, func(_ context.Context, keys []int) error {
		return nil
	})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				require.NoError(t, c.Do(context.Background(), g*10000+i))
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Empty(t, c.pending)
	require.Zero(t, c.flushing, "every slot handed out came back")
}
