"""The Lua scripts the shared Redis runs: each one atomic, on the Redis server's clock.

Every script reads the time with `TIME` on the server, so the workers' clocks never have to
agree; what a script hands back is a *duration* from the server's now (in microseconds, as
Redis turns Lua numbers into integers), which the worker adds to its own clock when the
reply arrives. A worker therefore acts no earlier than the server planned, never sooner.

Keys (one provider of one namespace; the `{...}` hash tag keeps them in one cluster slot):

    NS:{PROVIDER}:budget    hash: rl, rs (requests bucket level, stamp), tl, ts (tokens)
    NS:{PROVIDER}:pause     string: server time until which every worker holds back
    NS:{PROVIDER}:circuit   hash: state ("open" | "half_open"; absent: closed), opened, reset, ok
    NS:{PROVIDER}:probes    zset: half-open probes in flight, scored by when their lease ends
    NS:{PROVIDER}:workers   zset: the services polling this provider, scored by last poll

Each bucket follows `policy.bucket.TokenBucket` exactly (FIFO reservations with debt, full
at first use): the fleet admits at most `burst + rate * t` in any `t` seconds.

Replies, as hiredis hands them back (lists of integers):

- `ADMIT`: `[delay_us, requests_left, tokens_left]` (what the buckets hold now, negative in debt)
- `PAUSE`: `pause_us` (how long the pause now lasts)
- `POLL`: `[circuit, retry_in_us, pause_us, workers]`
- `TRIP`: `[circuit, retry_in_us]`
- `PROBE`: `[answer, retry_in_us]`, answer `DENIED`, `CLOSED` (go, not a probe) or `GRANTED`
- `PROBE_DONE`: `circuit`

where `circuit` is `CLOSED`, `OPEN` or `HALF_OPEN` below.
"""

from __future__ import annotations

import hashlib

import attrs

__all__ = [
    "ADMIT",
    "ALL",
    "CIRCUIT_STATES",
    "PAUSE",
    "POLL",
    "PROBE",
    "PROBE_CLOSED",
    "PROBE_DENIED",
    "PROBE_DONE",
    "PROBE_GRANTED",
    "TRIP",
    "Script",
]


@attrs.frozen
class Script:
    """A Lua script and its SHA1 (what `EVALSHA` names it by)."""

    name: str
    source: bytes
    sha: bytes = attrs.field(init=False)

    @sha.default
    def _sha(self) -> bytes:
        return hashlib.sha1(self.source).hexdigest().encode()  # Redis names scripts by SHA1


#: The circuit states in replies, by number.
CIRCUIT_STATES = ("closed", "open", "half_open")
PROBE_DENIED, PROBE_CLOSED, PROBE_GRANTED = 0, 1, 2

_NOW = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function us(seconds) return math.floor(seconds * 1000000) end
local function f(x) return string.format('%.17g', x) end
local STATES = {open = 1, half_open = 2}
"""

#: KEYS: budget, pause. ARGV: requests rate/s, requests burst, tokens rate/s, tokens burst
#: (a rate of 0: no such budget), tokens this request is estimated at, take (1: admit one
#: request; 0: only give back), requests given back, tokens given back (negative: charged).
ADMIT = Script(
    "admit",
    _NOW
    + b"""
local take = tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 'rl', 'rs', 'tl', 'ts')
local b = {
  {rate = tonumber(ARGV[1]), burst = tonumber(ARGV[2]), level = tonumber(s[1]), stamp = tonumber(s[2]),
   n = 1, give = tonumber(ARGV[7])},
  {rate = tonumber(ARGV[3]), burst = tonumber(ARGV[4]), level = tonumber(s[3]), stamp = tonumber(s[4]),
   n = tonumber(ARGV[5]), give = tonumber(ARGV[8])},
}
local function level_at(k, x)
  if x <= k.stamp then return k.level end
  return math.min(k.burst, k.level + k.rate * (x - k.stamp))
end
local function available(k, x)
  if x < k.stamp then return k.level - k.rate * (k.stamp - x) end
  return level_at(k, x)
end
local start = now
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if take == 1 and paused > start then start = paused end
local ready = start
for _, k in ipairs(b) do
  if k.rate > 0 then
    if k.level == nil or k.stamp == nil then k.level, k.stamp = k.burst, now end
    k.level = math.min(k.burst, k.level + k.give)
    if take == 1 then
      local x = math.max(start, k.stamp)
      local lv = level_at(k, x)
      local need = math.min(k.n, k.burst)
      local at = x
      if lv < need then at = x + (need - lv) / k.rate end
      if at > ready then ready = at end
    end
  end
end
local out = {us(ready - now), 0, 0}
local full = 1
for i, k in ipairs(b) do
  if k.rate > 0 then
    if take == 1 then
      local x = math.max(ready, k.stamp)
      k.level = level_at(k, x) - k.n
      k.stamp = x
    end
    redis.call('HSET', KEYS[1], i == 1 and 'rl' or 'tl', f(k.level), i == 1 and 'rs' or 'ts', f(k.stamp))
    -- a bucket left alone is full again after this long: the key may go then
    full = math.max(full, math.max(0, k.stamp - now) + (k.burst - k.level) / k.rate)
    out[i + 1] = math.floor(available(k, now))
  end
end
redis.call('PEXPIRE', KEYS[1], math.ceil(full * 1000) + 1000)
return out
""",
)

#: KEYS: pause. ARGV: seconds every worker should hold back from now (only ever lengthened).
PAUSE = Script(
    "pause",
    _NOW
    + b"""
local until_ = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > cur then
  redis.call('SET', KEYS[1], f(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
  cur = until_
end
return us(cur - now)
""",
)

#: KEYS: circuit, pause, workers. ARGV: this worker's id, seconds a worker counts as alive.
POLL = Script(
    "poll",
    _NOW
    + b"""
local alive = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], f(now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', f(now - alive))
redis.call('PEXPIRE', KEYS[3], math.ceil(alive * 2000))
local c = redis.call('HMGET', KEYS[1], 'state', 'opened', 'reset')
local state = STATES[c[1]] or 0
local retry = 0
if state == 1 then retry = math.max(0, tonumber(c[2]) + tonumber(c[3]) - now) end
local pause = math.max(0, tonumber(redis.call('GET', KEYS[2]) or '0') - now)
return {state, us(retry), us(pause), redis.call('ZCARD', KEYS[3])}
""",
)

#: KEYS: circuit, probes. ARGV: reset timeout (s). Opens the fleet's circuit (an open one is
#: left as it is: a worker that learns late must not postpone the probes).
TRIP = Script(
    "trip",
    _NOW
    + b"""
local c = redis.call('HMGET', KEYS[1], 'state', 'opened', 'reset')
if c[1] == 'open' then return {1, us(math.max(0, tonumber(c[2]) + tonumber(c[3]) - now))} end
redis.call('HSET', KEYS[1], 'state', 'open', 'opened', f(now), 'reset', ARGV[1], 'ok', 0)
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('DEL', KEYS[2])
return {1, us(tonumber(ARGV[1]))}
""",
)

#: KEYS: circuit, probes. ARGV: half_open_probes, lease (s), probe id. Asks to send a probe:
#: an open circuit past its reset timeout turns half-open; at most half_open_probes leases
#: are out at once across the fleet (a lease ends with PROBE_DONE, or when it runs out).
PROBE = Script(
    "probe",
    _NOW
    + b"""
local c = redis.call('HMGET', KEYS[1], 'state', 'opened', 'reset')
if c[1] ~= 'open' and c[1] ~= 'half_open' then return {1, 0} end
if c[1] == 'open' then
  local retry = tonumber(c[2]) + tonumber(c[3]) - now
  if retry > 0 then return {0, us(retry)} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'ok', 0)
  redis.call('DEL', KEYS[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', f(now))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return {0, 0} end
redis.call('ZADD', KEYS[2], f(now + tonumber(ARGV[2])), ARGV[3])
redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return {2, 0}
""",
)

#: KEYS: circuit, probes. ARGV: probe id, outcome ("success" | "failure" | "release"),
#: half_open_probes. A failure reopens the circuit; half_open_probes successes close it.
PROBE_DONE = Script(
    "probe_done",
    _NOW
    + b"""
local held = redis.call('ZREM', KEYS[2], ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'state')
if c[1] ~= 'half_open' then return STATES[c[1]] or 0 end
if ARGV[2] == 'failure' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened', f(now), 'ok', 0)
  redis.call('DEL', KEYS[2])
  return 1
end
if ARGV[2] == 'success' and held == 1 then
  if redis.call('HINCRBY', KEYS[1], 'ok', 1) >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1], KEYS[2])
    return 0
  end
end
return 2
""",
)

#: Every script, loaded on each (re)connection.
ALL = (ADMIT, PAUSE, POLL, TRIP, PROBE, PROBE_DONE)
