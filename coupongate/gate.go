package coupongate

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Result is the outcome of one Issue.
type Result int

// Issue outcomes.
const (
	// Issued: the member took a seat (stock decremented, member added).
	Issued Result = iota + 1
	// AlreadyIssued: the member is in the issued set; nothing changed.
	AlreadyIssued
	// SoldOut: stock is 0 or less; nothing changed.
	SoldOut
	// NotLoaded: the coupon's stock key does not exist (never loaded, or
	// Redis lost its data); nothing changed. Run load-redis or reconcile.
	NotLoaded
	// RateLimited: the member is past their allowance (IssueWithin);
	// nothing changed.
	RateLimited
)

func (r Result) String() string {
	switch r {
	case Issued:
		return "issued"
	case AlreadyIssued:
		return "already issued"
	case SoldOut:
		return "sold out"
	case NotLoaded:
		return "not loaded"
	case RateLimited:
		return "rate limited"
	}
	return "unknown"
}

// Gate is the coupon gate on one Redis.
type Gate struct {
	rdb    redis.Scripter
	prefix string
}

// New returns a gate on rdb whose keys all start with prefix ("" in
// production; tests give each test a prefix of its own).
func New(rdb redis.Scripter, prefix string) *Gate {
	return &Gate{rdb: rdb, prefix: prefix}
}

// StockKey is the key of code's stock counter.
func (g *Gate) StockKey(code string) string { return g.prefix + "coupon:stock:" + code }

// IssuedKey is the key of code's issued-member set.
func (g *Gate) IssuedKey(code string) string { return g.prefix + "coupon:issued:" + code }

func (g *Gate) keys(code string) []string { return []string{g.StockKey(code), g.IssuedKey(code)} }

// issueScript: not loaded → -1; member already in set → 0; stock <= 0 → -2;
// else decrement stock, add member → 1.
var issueScript = redis.NewScript(`
local stock = redis.call('GET', KEYS[1])
if not stock then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if tonumber(stock) <= 0 then return -2 end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1`)

// Issue runs the atomic issue step for member.
func (g *Gate) Issue(ctx context.Context, code string, member int64) (Result, error) {
	n, err := issueScript.Run(ctx, g.rdb, g.keys(code), member).Int64()
	if err != nil {
		return 0, fmt.Errorf("coupongate: issue %s/%d: %w", code, member, err)
	}
	return resultOf(n), nil
}

// resultOf reads the issue step's answer.
func resultOf(n int64) Result {
	switch n {
	case 1:
		return Issued
	case 0:
		return AlreadyIssued
	case -2:
		return SoldOut
	default:
		return NotLoaded
	}
}

// undoScript removes the member and, only if it was there, gives its seat
// back; so undoing twice restores one seat.
var undoScript = redis.NewScript(`
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCR', KEYS[1]) end
  return 1
end
return 0`)

// Undo compensates an issue: removes member from the issued set and restores
// its seat. It reports whether the member was in the set.
func (g *Gate) Undo(ctx context.Context, code string, member int64) (bool, error) {
	n, err := undoScript.Run(ctx, g.rdb, g.keys(code), member).Int()
	if err != nil {
		return false, fmt.Errorf("coupongate: undo %s/%d: %w", code, member, err)
	}
	return n == 1, nil
}

// addScript adds members (ARGV[2..]) to the set; each one newly added takes
// a seat if the stock key exists. Returns how many were added.
var addScript = redis.NewScript(`
local added = 0
for i = 1, #ARGV do
  added = added + redis.call('SADD', KEYS[2], ARGV[i])
end
if added > 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], added) end
return added`)

// AddBack puts members that hold a seat in Postgres (or in an unfinished
// persist job) back into the issued set, taking their seats from the stock.
// It returns how many were not in the set.
func (g *Gate) AddBack(ctx context.Context, code string, members []int64) (int, error) {
	added := 0
	for start := 0; start < len(members); start += 1000 {
		chunk := members[start:min(start+1000, len(members))]
		n, err := addScript.Run(ctx, g.rdb, g.keys(code), int64Args(chunk)...).Int()
		if err != nil {
			return added, fmt.Errorf("coupongate: add back %s: %w", code, err)
		}
		added += n
	}
	return added, nil
}

// resyncScript sets stock to total - |issued| (ARGV[1] = total) and returns
// the new stock.
var resyncScript = redis.NewScript(`
local stock = tonumber(ARGV[1]) - redis.call('SCARD', KEYS[2])
redis.call('SET', KEYS[1], stock)
return stock`)

// Resync sets code's stock to total minus the size of its issued set, in one
// atomic step, and returns the new stock (negative when more members hold a
// seat than total: the gate then answers sold out).
func (g *Gate) Resync(ctx context.Context, code string, total int64) (int64, error) {
	n, err := resyncScript.Run(ctx, g.rdb, g.keys(code), total).Int64()
	if err != nil {
		return 0, fmt.Errorf("coupongate: resync %s: %w", code, err)
	}
	return n, nil
}

// Load (re)builds code's gate from the database: members (everyone holding a
// seat: issued rows and unfinished persist jobs) are added to the issued set —
// members already there stay, so an issue racing the load is not lost — and
// the stock is set to total - |issued|. It returns the stock.
func (g *Gate) Load(ctx context.Context, code string, total int64, members []int64) (int64, error) {
	if _, err := g.AddBack(ctx, code, members); err != nil {
		return 0, fmt.Errorf("coupongate: load %s: %w", code, err)
	}
	return g.Resync(ctx, code, total)
}

// unloadScript deletes both keys.
var unloadScript = redis.NewScript(`return redis.call('DEL', KEYS[1], KEYS[2])`)

// Unload removes code's keys: the gate then answers NotLoaded for it.
func (g *Gate) Unload(ctx context.Context, code string) error {
	if err := unloadScript.Run(ctx, g.rdb, g.keys(code)).Err(); err != nil {
		return fmt.Errorf("coupongate: unload %s: %w", code, err)
	}
	return nil
}

// stateScript returns {stock or false, members...}.
var stateScript = redis.NewScript(`
local out = {redis.call('GET', KEYS[1])}
local members = redis.call('SMEMBERS', KEYS[2])
for i = 1, #members do out[#out + 1] = members[i] end
return out`)

// State is a consistent snapshot of one coupon's gate.
type State struct {
	Loaded  bool
	Stock   int64
	Members []int64
}

// State reads code's stock and issued set in one atomic step.
func (g *Gate) State(ctx context.Context, code string) (State, error) {
	vals, err := stateScript.Run(ctx, g.rdb, g.keys(code)).Slice()
	if err != nil {
		return State{}, fmt.Errorf("coupongate: state %s: %w", code, err)
	}
	var st State
	if len(vals) == 0 {
		return st, errors.New("coupongate: state: empty reply")
	}
	if s, ok := vals[0].(string); ok {
		st.Loaded = true
		if st.Stock, err = strconv.ParseInt(s, 10, 64); err != nil {
			return st, fmt.Errorf("coupongate: state %s: stock %q: %w", code, s, err)
		}
	}
	st.Members = make([]int64, 0, len(vals)-1)
	for _, v := range vals[1:] {
		s, _ := v.(string)
		m, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return st, fmt.Errorf("coupongate: state %s: member %q: %w", code, s, err)
		}
		st.Members = append(st.Members, m)
	}
	return st, nil
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// countsScript returns {stock or false, size of the issued set}.
var countsScript = redis.NewScript(`
return {redis.call('GET', KEYS[1]), redis.call('SCARD', KEYS[2])}`)

// Counts is a coupon gate's stock and the size of its issued set, read in
// one atomic step without the members.
type Counts struct {
	Loaded bool
	Stock  int64
	Issued int64
}

// Counts reads code's stock and issued-set size: what a metrics scrape
// needs, at a cost that does not grow with the issues.
func (g *Gate) Counts(ctx context.Context, code string) (Counts, error) {
	vals, err := countsScript.Run(ctx, g.rdb, g.keys(code)).Slice()
	if err != nil {
		return Counts{}, fmt.Errorf("coupongate: counts %s: %w", code, err)
	}
	if len(vals) != 2 {
		return Counts{}, fmt.Errorf("coupongate: counts %s: %d values in reply", code, len(vals))
	}
	var c Counts
	if s, ok := vals[0].(string); ok {
		c.Loaded = true
		if c.Stock, err = strconv.ParseInt(s, 10, 64); err != nil {
			return c, fmt.Errorf("coupongate: counts %s: stock %q: %w", code, s, err)
		}
	}
	c.Issued, _ = vals[1].(int64)
	return c, nil
}
