package partnerbudget

import "github.com/redis/go-redis/v9"

// Every script reads Redis's clock (TIME), so processes on machines whose
// clocks disagree still share one budget. Times are seconds since the
// epoch minus 1.7e9, kept to the microsecond in a double.
const clock = `
redis.replicate_commands()
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1000000
local function num(v) return tonumber(v or '0') or 0 end
local function fmt(v) return string.format('%.6f', v) end
`

// gate is the check every call passes first: a pause set from a
// Retry-After, then the breaker. It returns nil, or {reason, seconds}.
// Breaker keys: KEYS[2] open-until (absent: closed; in the past:
// half-open). KEYS[1] the pause.
const gate = `
local function gate()
  local pause = num(redis.call('GET', KEYS[1]))
  if pause > now then return {'retry_after', fmt(pause - now)} end
  local open = redis.call('GET', KEYS[2])
  if open and num(open) > now then return {'breaker', fmt(num(open) - now)} end
  return nil
end
`

// reserveScript takes the next rate slot if it starts within the horizon:
// {'ok', seconds until it starts, half_open 0|1} or {reason, seconds}.
// KEYS: pause, open, tat. ARGV: rate (calls/s), horizon (s).
var reserveScript = redis.NewScript(clock + gate + `
local g = gate()
if g then return g end
local halfOpen = redis.call('EXISTS', KEYS[2])
local rate, horizon = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(num(redis.call('GET', KEYS[3])), now)
local delay = tat - now
if delay > horizon then return {'rate', fmt(delay - horizon)} end
local nxt = tat + 1 / rate
redis.call('SET', KEYS[3], fmt(nxt), 'PX', math.ceil((nxt - now) * 1000) + 1000)
return {'ok', fmt(delay), halfOpen}`)

// admitScript lets a call start: the gate again (a pause may have begun
// while the caller waited for its rate slot), the half-open breaker's one
// probe, and a concurrency slot. {'ok', probe 0|1} or {reason, seconds}.
// KEYS: pause, open, probe, slots. ARGV: concurrency (0: none), token,
// slot lifetime (s), probe lifetime (ms).
var admitScript = redis.NewScript(clock + gate + `
local g = gate()
if g then return g end
local probe = 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', tonumber(ARGV[4])) then
    return {'breaker', '1'}
  end
  probe = 1
end
local conc = tonumber(ARGV[1])
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
  if redis.call('ZCARD', KEYS[4]) >= conc then
    if probe == 1 then redis.call('DEL', KEYS[3]) end
    return {'concurrency', '0.02'}
  end
  local life = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[4], fmt(now + life), ARGV[2])
  redis.call('PEXPIRE', KEYS[4], math.ceil(life * 1000) + 1000)
end
return {'ok', probe}`)

// doneScript records a call's outcome: it frees the call's slot and moves
// the pause and the breaker. It returns 'opened', 'closed' or an empty string.
// KEYS: pause, open, probe, slots, fails. ARGV: token, outcome (ok,
// unused, overloaded, failing), retry-after (s), probe 0|1, failures that
// open the breaker, open time (s).
var doneScript = redis.NewScript(clock + `
redis.call('ZREM', KEYS[4], ARGV[1])
local outcome, probe = ARGV[2], ARGV[4] == '1'
if outcome == 'unused' then
  if probe then redis.call('DEL', KEYS[3]) end
  return ''
end
if outcome == 'overloaded' then
  local ra = tonumber(ARGV[3])
  local untilT = now + ra
  if untilT > num(redis.call('GET', KEYS[1])) then
    redis.call('SET', KEYS[1], fmt(untilT), 'PX', math.ceil(ra * 1000) + 1000)
  end
end
if outcome == 'ok' or outcome == 'overloaded' then
  -- The partner answered: it is up, whether or not it is busy.
  redis.call('DEL', KEYS[5])
  if probe then
    redis.call('DEL', KEYS[2], KEYS[3])
    return 'closed'
  end
  return ''
end
local openFor = tonumber(ARGV[6])
local function open()
  redis.call('SET', KEYS[2], fmt(now + openFor), 'PX', math.ceil(openFor * 1000) + 600000)
  redis.call('DEL', KEYS[3], KEYS[5])
  return 'opened'
end
if probe then return open() end
if redis.call('EXISTS', KEYS[2]) == 1 then return '' end
local n = redis.call('INCR', KEYS[5])
redis.call('PEXPIRE', KEYS[5], 60000)
if n >= tonumber(ARGV[5]) then return open() end
return ''`)
