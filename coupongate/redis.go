package coupongate

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the gate's connection to Redis: a go-redis client that is
// replaced by a fresh one as soon as Redis answers again after an outage.
//
// go-redis stops dialing once PoolSize dials in a row have failed, and from
// then on probes once a second; until a probe succeeds every command fails
// at once with the last dial error, even when Redis is back. Redis instead
// probes the address itself when a command fails to dial (one probe at a
// time, at most every ProbeEvery) and, when it connects, swaps in a new
// client and runs the command again.
//
// Running it again is safe because go-redis never retries here (MaxRetries
// -1, one dial per command): a command that failed to dial was never sent.
// The same setting makes a command whose reply was lost fail instead of
// being sent again, so a seat taken by a lost EVAL is never answered
// "already issued" by a silent retry.
type Redis struct {
	opt *redis.Options
	cur atomic.Pointer[redis.Client]

	probing   atomic.Bool
	mu        sync.Mutex // guards lastProbe
	lastProbe time.Time
}

var _ redis.Scripter = (*Redis)(nil)

// ProbeEvery bounds how often failing commands probe Redis's address.
const ProbeEvery = 20 * time.Millisecond

// NewRedis returns a client for opt, with go-redis's retries off: one dial
// per command and no command sent twice, so while Redis is away a command
// fails at once.
func NewRedis(opt *redis.Options) *Redis {
	o := *opt
	o.DialerRetries = 1
	o.MaxRetries = -1
	r := &Redis{opt: &o}
	r.cur.Store(redis.NewClient(&o))
	return r
}

// Client is the current go-redis client.
func (r *Redis) Client() *redis.Client { return r.cur.Load() }

// Close closes the current client.
func (r *Redis) Close() error { return r.cur.Load().Close() }

// Ping pings Redis.
func (r *Redis) Ping(ctx context.Context) error {
	return do(r, ctx, func(c *redis.Client) *redis.StatusCmd { return c.Ping(ctx) }).Err()
}

// do runs f on the current client and, if it failed to dial while Redis's
// address accepts connections again, once more on a fresh client.
func do[C redis.Cmder](r *Redis, ctx context.Context, f func(*redis.Client) C) C {
	c := r.cur.Load()
	cmd := f(c)
	if !isDialError(cmd.Err()) || !r.renew(ctx, c) {
		return cmd
	}
	return f(r.cur.Load())
}

// renew replaces failed with a new client if Redis's address accepts a
// connection now, and reports whether the current client is a newer one.
// Commands that find a probe under way fail at once rather than wait for it.
func (r *Redis) renew(ctx context.Context, failed *redis.Client) bool {
	if r.cur.Load() != failed {
		return true // another command renewed it already
	}
	r.mu.Lock()
	due := time.Since(r.lastProbe) >= ProbeEvery
	if due {
		r.lastProbe = time.Now()
	}
	r.mu.Unlock()
	if !due || !r.probing.CompareAndSwap(false, true) {
		return false
	}
	defer r.probing.Store(false)
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	conn, err := d.DialContext(ctx, r.opt.Network, r.opt.Addr)
	if err != nil {
		return false
	}
	_ = conn.Close()
	fresh := redis.NewClient(r.opt)
	if !r.cur.CompareAndSwap(failed, fresh) {
		_ = fresh.Close()
		return true
	}
	// Commands may still be running on the old client's live connections
	// (one dial failing does not mean the others are dead): close it once
	// they are done, bounded by its read and write timeouts.
	time.AfterFunc(retireAfter, func() { _ = failed.Close() })
	return true
}

// retireAfter is how long a replaced client is kept for the commands still
// running on it (go-redis's read and write timeouts are 3 s each).
const retireAfter = 10 * time.Second

// isDialError reports whether err is a failure to connect (the command was
// never sent).
func isDialError(err error) bool {
	var op *net.OpError
	return err != nil && errors.As(err, &op) && op.Op == "dial"
}

// Eval implements redis.Scripter.
func (r *Redis) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return do(r, ctx, func(c *redis.Client) *redis.Cmd { return c.Eval(ctx, script, keys, args...) })
}

// EvalSha implements redis.Scripter.
func (r *Redis) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return do(r, ctx, func(c *redis.Client) *redis.Cmd { return c.EvalSha(ctx, sha1, keys, args...) })
}

// EvalRO implements redis.Scripter.
func (r *Redis) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return do(r, ctx, func(c *redis.Client) *redis.Cmd { return c.EvalRO(ctx, script, keys, args...) })
}

// EvalShaRO implements redis.Scripter.
func (r *Redis) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return do(r, ctx, func(c *redis.Client) *redis.Cmd { return c.EvalShaRO(ctx, sha1, keys, args...) })
}

// ScriptExists implements redis.Scripter.
func (r *Redis) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return do(r, ctx, func(c *redis.Client) *redis.BoolSliceCmd { return c.ScriptExists(ctx, hashes...) })
}

// ScriptLoad implements redis.Scripter.
func (r *Redis) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return do(r, ctx, func(c *redis.Client) *redis.StringCmd { return c.ScriptLoad(ctx, script) })
}

// Dial connects a plain go-redis client for opt and checks within three
// seconds that Redis answers, for a command that needs Redis now or not at
// all (the CLI's coupon commands). The caller closes the client.
func Dial(ctx context.Context, opt *redis.Options) (*redis.Client, error) {
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, err
	}
	return rdb, nil
}
