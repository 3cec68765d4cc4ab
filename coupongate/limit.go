package coupongate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is how many issue requests one member may make: N a Period, all N
// at once at most. The zero Limit is no limit.
type Limit struct {
	N      int
	Period time.Duration
}

// RateLimitKey is the key of member's allowance.
func (g *Gate) RateLimitKey(member int64) string {
	return g.prefix + "coupon:rate:" + strconv.FormatInt(member, 10)
}

// gcra is the allowance step shared by allowScript and issueWithinScript:
// the generic cell rate algorithm of go-redis/redis_rate (after
// rwz/redis-gcra), one request at a cost of one, on Redis's own clock.
// KEYS[3] is the member's key, ARGV[2..4] the burst, the rate and the
// period in seconds. It returns nil when the request is allowed (and
// counts it), else the seconds until one is.
const gcra = `
local function gcra()
  redis.replicate_commands()
  local burst, rate, period = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local interval = period / rate
  local t = redis.call('TIME')
  local now = (t[1] - 1483228800) + (t[2] / 1000000)
  local tat = tonumber(redis.call('GET', KEYS[3]) or now)
  tat = math.max(tat, now)
  local new_tat = tat + interval
  local diff = now - (new_tat - interval * burst)
  if diff < 0 then return tostring(-diff) end
  redis.call('SET', KEYS[3], new_tat, 'EX', math.ceil(new_tat - now))
  return nil
end
`

// allowScript takes one request of a member's allowance: {1} or {0,
// seconds to wait}. KEYS[1] and KEYS[2] are unused (the same key layout as
// issueWithinScript).
var allowScript = redis.NewScript(gcra + `
local wait = gcra()
if wait then return {0, wait} end
return {1}`)

// issueWithinScript is issueScript after gcra: -3 (and the seconds to wait)
// when the member is past their allowance, the seat untouched.
var issueWithinScript = redis.NewScript(gcra + `
local wait = gcra()
if wait then return {-3, wait} end
local stock = redis.call('GET', KEYS[1])
if not stock then return {-1} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {0} end
if tonumber(stock) <= 0 then return {-2} end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return {1}`)

func (l Limit) args(member int64) []any {
	return []any{member, l.N, l.N, l.Period.Seconds()}
}

// Allow takes one request of member's allowance under lim, or says how long
// until one is left. Nothing else is touched.
func (g *Gate) Allow(ctx context.Context, member int64, lim Limit) (bool, time.Duration, error) {
	if lim.N <= 0 {
		return true, 0, nil
	}
	keys := []string{g.StockKey(""), g.IssuedKey(""), g.RateLimitKey(member)}
	v, err := allowScript.Run(ctx, g.rdb, keys, lim.args(member)...).Slice()
	if err != nil {
		return false, 0, fmt.Errorf("coupongate: allowance of member %d: %w", member, err)
	}
	ok, wait := replyOf(v)
	return ok == 1, wait, nil
}

// IssueWithin is Issue for a member who must be within lim: one step that
// takes one request of their allowance and, if they are within it, runs the
// issue. Past it, the result is RateLimited with the time until a request
// is allowed, and the seat is untouched. A zero lim is Issue.
func (g *Gate) IssueWithin(ctx context.Context, code string, member int64, lim Limit) (Result, time.Duration, error) {
	if lim.N <= 0 {
		res, err := g.Issue(ctx, code, member)
		return res, 0, err
	}
	keys := []string{g.StockKey(code), g.IssuedKey(code), g.RateLimitKey(member)}
	v, err := issueWithinScript.Run(ctx, g.rdb, keys, lim.args(member)...).Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("coupongate: issue %s/%d: %w", code, member, err)
	}
	n, wait := replyOf(v)
	if n == -3 {
		return RateLimited, wait, nil
	}
	return resultOf(n), 0, nil
}

// replyOf reads a script's {n} or {n, "seconds"}.
func replyOf(v []any) (int64, time.Duration) {
	var n int64
	if len(v) > 0 {
		n, _ = v[0].(int64)
	}
	var wait time.Duration
	if len(v) > 1 {
		s, _ := v[1].(string)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			wait = time.Duration(f * float64(time.Second))
		}
	}
	return n, wait
}
