package partnerbudget

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tidemark/tidemark/orderapi"
)

// Reason is why a call had to wait.
type Reason string

// Reasons a call waits or its job snoozes.
const (
	ReasonRate        Reason = "rate"        // the shared rate has no slot soon enough
	ReasonConcurrency Reason = "concurrency" // every shared in-flight slot is taken
	ReasonRetryAfter  Reason = "retry_after" // the partner answered 429 or 503
	ReasonBreaker     Reason = "breaker"     // the breaker is open, or half-open with its probe out
	ReasonRedis       Reason = "redis"       // a budget is set and Redis does not answer
)

// Reasons lists every Reason, for metrics.
var Reasons = []Reason{ReasonRate, ReasonConcurrency, ReasonRetryAfter, ReasonBreaker, ReasonRedis}

// Settings is the budget shared by every process using the same Prefix on
// the same Redis.
type Settings struct {
	// Rate is calls a second across all processes; 0 is no limit.
	Rate float64
	// Concurrency is calls in flight across all processes; 0 is no limit.
	Concurrency int
	// Prefix starts every key ("tidemark:partner").
	Prefix string
	// CallTimeout is the longest a call takes: a slot or a probe whose
	// process died is freed this long (plus a margin) after it was taken.
	CallTimeout time.Duration
}

// Tuning of the budget (docs/design/partner.md).
const (
	// Horizon is how far ahead a call may reserve a rate slot and wait for
	// it in its process; a call that would wait longer snoozes instead.
	Horizon = 2 * time.Second
	// MaxInlineWait bounds an Acquire's in-process wait for a concurrency
	// slot before its job snoozes.
	MaxInlineWait = 3 * time.Second
	// BreakerFailures is how many failures in a row (timeouts, refused
	// connections, 5xx other than 503), across all processes, open the
	// breaker.
	BreakerFailures = 10
	// BreakerOpenFor is how long the breaker stays open before it
	// half-opens and lets one probe through.
	BreakerOpenFor = 5 * time.Second
	// DefaultRetryAfter is the pause after a 429 or 503 without a readable
	// Retry-After; MinRetryAfter and MaxRetryAfter bound the partner's.
	DefaultRetryAfter = 2 * time.Second
	MinRetryAfter     = 100 * time.Millisecond
	MaxRetryAfter     = 5 * time.Minute
	// RedisDownWait is how long a job snoozes while Redis cannot tell it
	// whether a set budget has room.
	RedisDownWait = 2 * time.Second
)

// Observer is told what the budget does, for metrics. Every method must
// be safe for concurrent use.
type Observer interface {
	// Waited: a call waited in its process for budget.
	Waited(r Reason)
	// Snoozed: a call was not made and its job snoozes.
	Snoozed(r Reason)
	// Throttled: the partner answered 429 or 503.
	Throttled(status int)
	// BreakerOpened: this process saw the breaker open.
	BreakerOpened()
}

type nopObserver struct{}

func (nopObserver) Waited(Reason)  {}
func (nopObserver) Snoozed(Reason) {}
func (nopObserver) Throttled(int)  {}
func (nopObserver) BreakerOpened() {}

// NoBudget is Acquire's answer when the call must not be made now: its job
// snoozes for Wait (jittered already) without making it.
type NoBudget struct {
	Reason Reason
	Wait   time.Duration
}

func (e *NoBudget) Error() string {
	return fmt.Sprintf("partnerbudget: no budget (%s) for %s", e.Reason, e.Wait.Round(time.Millisecond))
}

// Budget hands out permits to call the partner.
type Budget struct {
	rdb      redis.Scripter
	s        Settings
	obs      Observer
	keys     keys
	failedAt atomic.Int64 // unix nanos of this process's last failing call
}

type keys struct{ pause, open, probe, slots, fails, tat string }

// New returns the budget s on rdb; obs may be nil.
func New(rdb redis.Scripter, s Settings, obs Observer) *Budget {
	if obs == nil {
		obs = nopObserver{}
	}
	if s.CallTimeout <= 0 {
		s.CallTimeout = 10 * time.Second
	}
	p := s.Prefix + ":"
	return &Budget{rdb: rdb, s: s, obs: obs, keys: keys{
		pause: p + "pause", open: p + "breaker:open", probe: p + "breaker:probe",
		slots: p + "slots", fails: p + "breaker:fails", tat: p + "rate",
	}}
}

// Limited reports whether a rate or a concurrency is set.
func (b *Budget) Limited() bool { return b != nil && (b.s.Rate > 0 || b.s.Concurrency > 0) }

// Permit is the right to make one call. Report its outcome with Done, or
// Release it unused.
type Permit struct {
	b     *Budget
	token string
	probe bool
	slot  bool
	done  bool
}

// Probe reports whether this call is the half-open breaker's probe: make
// it a call that cannot change anything at the partner (a lookup), so that
// its failure can be waited out without spending an attempt.
func (p *Permit) Probe() bool { return p != nil && p.probe }

// Acquire returns a permit for one call, after waiting in-process for at
// most Horizon for a rate slot and MaxInlineWait for a concurrency slot,
// or a *NoBudget. A nil Budget gives a permit that limits nothing. When
// Redis does not answer, a set budget gives NoBudget (ReasonRedis); with
// no budget set the call goes ahead.
func (b *Budget) Acquire(ctx context.Context) (*Permit, error) {
	if b == nil {
		return &Permit{}, nil
	}
	start := time.Now()
	if b.s.Rate > 0 {
		v, err := b.run(ctx, reserveScript, []string{b.keys.pause, b.keys.open, b.keys.tat},
			strconv.FormatFloat(b.s.Rate, 'f', -1, 64), Horizon.Seconds()).Slice()
		if err != nil {
			return b.redisDown(ctx, err)
		}
		reason, d := parse(v)
		if reason != "" {
			return nil, b.noBudget(reason, d)
		}
		halfOpen := len(v) > 2 && toInt(v[2]) == 1
		if d > 0 {
			b.obs.Waited(ReasonRate)
			if err := sleep(ctx, d); err != nil {
				return nil, err
			}
		}
		if b.s.Concurrency == 0 && !halfOpen && d == 0 {
			// The gate passed as the slot was reserved, just now.
			return &Permit{b: b}, nil
		}
		// A call that waited for its slot passes the gate again: a pause
		// or an open breaker begun while it waited holds it too. Without
		// this, the calls reserved up to Horizon ahead went on into a
		// partner that had just answered 429, each drawing another.
	}
	token := newToken()
	for {
		v, err := b.run(ctx, admitScript, []string{b.keys.pause, b.keys.open, b.keys.probe, b.keys.slots},
			b.s.Concurrency, token, (b.s.CallTimeout + 5*time.Second).Seconds(), (b.s.CallTimeout + time.Second).Milliseconds()).Slice()
		if err != nil {
			return b.redisDown(ctx, err)
		}
		reason, d := parse(v)
		if reason == "" {
			return &Permit{b: b, token: token, probe: len(v) > 1 && toInt(v[1]) == 1, slot: b.s.Concurrency > 0}, nil
		}
		if reason != ReasonConcurrency || time.Since(start)+d > MaxInlineWait {
			return nil, b.noBudget(reason, d)
		}
		b.obs.Waited(ReasonConcurrency)
		// Spread the waiters' retries so they do not knock together.
		if err := sleep(ctx, d+time.Duration(rand.Int64N(int64(2*d)+1))); err != nil {
			return nil, err
		}
	}
}

// run runs script within a second: a Redis that is slow to answer counts
// as one that is away.
func (b *Budget) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return script.Run(ctx, b.rdb, keys, args...)
}

func (b *Budget) redisDown(ctx context.Context, err error) (*Permit, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !b.Limited() {
		return &Permit{}, nil // nothing to keep to: the call goes ahead
	}
	return nil, b.noBudget(ReasonRedis, RedisDownWait)
}

// noBudget is a NoBudget for d, jittered (Jitter) so that jobs turned
// away together do not come back together.
func (b *Budget) noBudget(r Reason, d time.Duration) *NoBudget {
	b.obs.Snoozed(r)
	return &NoBudget{Reason: r, Wait: Jitter(d)}
}

// Jitter bounds d to [50ms, MaxRetryAfter] and adds up to a tenth of it
// (at most 2 s) and 250 ms: enough to spread a crowd over the shared rate,
// short enough that a backlog starts to drain within seconds of the
// partner's return.
func Jitter(d time.Duration) time.Duration {
	d = min(max(d, 50*time.Millisecond), MaxRetryAfter)
	return d + time.Duration(rand.Int64N(int64(min(d/10, 2*time.Second)+250*time.Millisecond)))
}

// Done reports the outcome of the call made with p (err is the call's
// error, nil for a success) and frees its slot. When the partner answered
// 429 or 503, it pauses every process for the answer's Retry-After and
// returns how long this job should snooze (retry true): the partner did
// nothing with the call, so the job can try again later at no risk and
// without spending an attempt.
func (p *Permit) Done(ctx context.Context, callErr error) (snooze time.Duration, retry bool) {
	if p == nil || p.done {
		return 0, false
	}
	p.done = true
	b := p.b
	outcome := "ok"
	var ra time.Duration
	if d, ok := orderapi.Overloaded(callErr); ok {
		outcome = "overloaded"
		ra = d
		if ra <= 0 {
			ra = DefaultRetryAfter
		}
		ra = min(max(ra, MinRetryAfter), MaxRetryAfter)
		if b != nil {
			var se *orderapi.StatusError
			if errors.As(callErr, &se) {
				b.obs.Throttled(se.Status)
			}
			b.obs.Snoozed(ReasonRetryAfter)
		}
		snooze, retry = Jitter(ra), true
	} else if orderapi.Failing(ctx, callErr) {
		outcome = "failing"
	} else if callErr != nil && ctx.Err() != nil {
		// Cut off by the job's own context (a stopping worker, a cancel):
		// the partner said nothing, so the call neither closes the breaker
		// nor ends a run of failures; its slot and probe are freed.
		outcome = "unused"
	}
	if b == nil {
		return snooze, retry
	}
	if outcome == "failing" {
		b.failedAt.Store(time.Now().UnixNano())
	}
	// A success needs Redis only to free a slot, end a probe, or reset a
	// run of failures this process has seen lately.
	if outcome == "ok" && !p.slot && !p.probe && time.Since(time.Unix(0, b.failedAt.Load())) > time.Minute {
		return snooze, retry
	}
	b.done(ctx, p, outcome, ra)
	return snooze, retry
}

// Release gives p back unused.
func (p *Permit) Release(ctx context.Context) {
	if p == nil || p.done || p.b == nil {
		return
	}
	p.done = true
	if p.slot || p.probe {
		p.b.done(ctx, p, "unused", 0)
	}
}

func (b *Budget) done(ctx context.Context, p *Permit, outcome string, ra time.Duration) {
	// Recorded even when the job's context ended with the call.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	probe := "0"
	if p.probe {
		probe = "1"
	}
	res, err := doneScript.Run(ctx, b.rdb, []string{b.keys.pause, b.keys.open, b.keys.probe, b.keys.slots, b.keys.fails},
		p.token, outcome, ra.Seconds(), probe, BreakerFailures, BreakerOpenFor.Seconds()).Text()
	if err == nil && res == "opened" {
		b.obs.BreakerOpened()
	}
	// A slot not freed (Redis away) expires CallTimeout after it was taken.
}

// BreakerState is the shared breaker's state.
type BreakerState string

// Breaker states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half_open"
)

// Status is the shared state as Redis holds it now.
type Status struct {
	Breaker BreakerState
	// OpenUntil is when an open breaker half-opens.
	OpenUntil time.Time
	// PausedUntil is the end of a pause set from a Retry-After (zero: none).
	PausedUntil time.Time
	// InFlight is the calls holding a concurrency slot.
	InFlight int64
}

var statusScript = redis.NewScript(clock + `
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
return {fmt(now), redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '', redis.call('ZCARD', KEYS[3])}`)

// Status reads the shared state.
func (b *Budget) Status(ctx context.Context) (Status, error) {
	v, err := statusScript.Run(ctx, b.rdb, []string{b.keys.open, b.keys.pause, b.keys.slots}).Slice()
	if err != nil {
		return Status{}, fmt.Errorf("partnerbudget: status: %w", err)
	}
	if len(v) < 4 {
		return Status{}, errors.New("partnerbudget: status: short answer")
	}
	now := toFloat(v[0])
	at := func(x float64) time.Time { return time.Now().Add(time.Duration((x - now) * float64(time.Second))) }
	st := Status{Breaker: BreakerClosed, InFlight: toInt(v[3])}
	if s, _ := v[1].(string); s != "" {
		st.OpenUntil = at(toFloat(s))
		st.Breaker = BreakerOpen
		if toFloat(s) <= now {
			st.Breaker = BreakerHalfOpen
		}
	}
	if s, _ := v[2].(string); s != "" && toFloat(s) > now {
		st.PausedUntil = at(toFloat(s))
	}
	return st, nil
}

func parse(v []any) (Reason, time.Duration) {
	if len(v) < 2 {
		return ReasonRedis, RedisDownWait
	}
	s, _ := v[0].(string)
	var d time.Duration
	if s == "ok" {
		if len(v) > 1 {
			if x, ok := v[1].(string); ok {
				d = time.Duration(toFloat(x) * float64(time.Second))
			}
		}
		return "", d
	}
	d = time.Duration(toFloat(v[1]) * float64(time.Second))
	return Reason(s), d
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	case int64:
		return float64(x)
	}
	return 0
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
