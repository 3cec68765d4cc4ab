package coupongate_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/testredis"
)

// After an outage long enough for go-redis to stop dialing, the first
// command once Redis is back succeeds; a plain go-redis client in the same
// state still fails it with the old dial error.
func TestRedisReconnectsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := testredis.Start(t)
	opt, err := redis.ParseURL(rs.URL)
	require.NoError(t, err)
	opt.PoolSize = 4
	r := coupongate.NewRedis(opt)
	defer r.Close()
	plainOpt := *opt
	plainOpt.DialerRetries = 1
	plain := redis.NewClient(&plainOpt)
	defer plain.Close()
	require.NoError(t, r.Ping(ctx))
	require.NoError(t, plain.Ping(ctx).Err())

	rs.Kill()
	for range 2 * opt.PoolSize { // more failed dials than the pool has room for
		require.Error(t, r.Ping(ctx))
		require.Error(t, plain.Ping(ctx).Err())
	}
	lastFailure := time.Now()
	require.NoError(t, rs.Start())
	// Probes are rate-limited; wait out the limit (not a wait for Redis).
	time.Sleep(time.Until(lastFailure.Add(coupongate.ProbeEvery)))

	require.Error(t, plain.Ping(ctx).Err(), "plain go-redis reconnects at once now; coupongate.Redis may no longer be needed")
	require.NoError(t, r.Ping(ctx), "the first command after Redis is back")
	g := coupongate.New(r, "t:")
	res, err := g.Issue(ctx, "X", 1)
	require.NoError(t, err)
	require.Equal(t, coupongate.NotLoaded, res, "the restarted Redis is empty")
}
