#!lua
-- Take a slice of a source's event budget: one token bucket per source, shared by every API process.
-- KEYS[1] the bucket (hash: tokens, ms of the last refill)
-- ARGV: now_ms, rate_eps, burst, need, want
--   need: tokens the caller must get now (its request's events minus what it already holds), >= 1
--   want: the most it takes (>= need); the rest of a grant is spent locally by the caller's next requests
-- The bucket refills at rate_eps tokens per second up to burst, and starts full. A take is granted when the bucket
-- holds `need` tokens (a need above the whole burst: when the bucket is full, which leaves it in debt, so one batch
-- larger than the burst is accepted and the source then waits for the debt to refill).
-- Returns {granted, retry_after_ms}: {0, ms until `need` tokens are there} when refused.
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local want = tonumber(ARGV[5])
local f = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens = tonumber(f[1])
local last = tonumber(f[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
elseif now > last then  -- API hosts whose clocks disagree never refill backwards
  tokens = math.min(burst, tokens + (now - last) * rate / 1000)
  last = now
end
local enough = math.min(need, burst)
local granted = 0
if tokens >= enough then
  granted = math.max(need, math.min(want, math.floor(tokens)))
  tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ms', last)
-- once it could have refilled completely, the bucket is the same as no bucket
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
if granted > 0 then
  return {granted, 0}
end
return {0, math.ceil((enough - tokens) * 1000 / rate)}
