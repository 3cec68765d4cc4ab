package coupongate_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// After an outage long enough for go-redis to stop dialing (it then probes
// only once a second), commands succeed again as soon as Redis is back and a
// probe of its own is due (one every ProbeEvery), on a fresh client: they do
// not wait for go-redis's probe.
func TestRedisReconnectsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := testredis.Start(t)
	opt, err := redis.ParseURL(rs.URL)
	require.NoError(t, err)
	opt.PoolSize = 4
	r := coupongate.NewRedis(opt)
	defer r.Close()
	require.NoError(t, r.Ping(ctx))

	rs.Kill()
	for range 2 * opt.PoolSize { // more failed dials than the pool has room for
		require.Error(t, r.Ping(ctx))
	}
	failing := r.Client()
	require.NoError(t, rs.Start())
	// A command fails at once until the next probe is due, then succeeds.
	testkit.WaitFor(t, 10*time.Second, "a command succeeding after Redis is back", func() (bool, error) {
		return true, r.Ping(ctx)
	})
	require.NotSame(t, failing, r.Client(), "answered by the fresh client Redis swapped in, not by go-redis's own probe")
	g := coupongate.New(r, "t:")
	res, err := g.Issue(ctx, "X", 1)
	require.NoError(t, err)
	require.Equal(t, coupongate.NotLoaded, res, "the restarted Redis is empty")
}
