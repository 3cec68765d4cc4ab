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

// After an outage long enough for go-redis to stop dialing (it then probes
// only once a second), the first command once Redis is back succeeds.
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
	lastFailure := time.Now()
	require.NoError(t, rs.Start())
	// Probes are rate-limited; wait out the limit (not a wait for Redis).
	time.Sleep(time.Until(lastFailure.Add(coupongate.ProbeEvery)))

	require.NoError(t, r.Ping(ctx), "the first command after Redis is back")
	g := coupongate.New(r, "t:")
	res, err := g.Issue(ctx, "X", 1)
	require.NoError(t, err)
	require.Equal(t, coupongate.NotLoaded, res, "the restarted Redis is empty")
}
