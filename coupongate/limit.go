package coupongate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter bounds how often one member may ask for a coupon, across every
// worker process: a GCRA allowance kept in Redis (go-redis/redis_rate), n
// requests a period, all of them at once at most.
type Limiter struct {
	rl     *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string
}

// LimiterRedis is what the limiter needs of a Redis client (*Redis).
type LimiterRedis interface {
	redis.Scripter
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

// NewLimiter returns a limiter of n requests per period per member on rdb,
// its keys under prefix (as the gate's).
func NewLimiter(rdb LimiterRedis, prefix string, n int, period time.Duration) *Limiter {
	return &Limiter{rl: redis_rate.NewLimiter(rdb), limit: redis_rate.Limit{Rate: n, Burst: n, Period: period}, prefix: prefix}
}

// Allow takes one request of member's allowance, or says how long until
// one is left. Nothing else in Redis is touched.
func (l *Limiter) Allow(ctx context.Context, member int64) (bool, time.Duration, error) {
	res, err := l.rl.Allow(ctx, l.prefix+"coupon:member:"+strconv.FormatInt(member, 10), l.limit)
	if err != nil {
		return false, 0, fmt.Errorf("coupongate: rate limit of member %d: %w", member, err)
	}
	return res.Allowed > 0, res.RetryAfter, nil
}
