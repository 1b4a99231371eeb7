#!lua flags=allow-oom
-- Claim a sealed batch for one upload attempt: a lease, so two uploaders never work on one batch at once.
-- KEYS[1] batch meta  KEYS[2] pending
-- ARGV: batch_id, now_ms, lease_ms, token, object_key (computed from the current config)
-- `claims` counts claims without a recorded outcome: a worker that died mid-upload leaves it raised.
-- The object key is fixed at the first attempt whose outcome is unknown (`uncertain`): an upload that may have
-- reached S3 is always repeated under the same key. Only a batch S3 refused outright takes a key from new config.
-- The token is new for every attempt: the same token again is this claim retried by the client after a lost reply,
-- answered as before without counting a second claim.
-- Returns {'gone'} | {'dead'} | {'leased'} |
--   {'ok', hour, events, bytes, attempts, claims, retry_since_ms, key, first_ms, last_ms}
-- (retry_since_ms: the first failure since the batch was sealed or last replayed, '' without one)
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return {'gone'} end
local f = redis.call('HMGET', meta, 'state', 'lease_until', 'claims', 'uncertain', 'key', 'lease_owner')
if f[1] == 'dead' then return {'dead'} end
if f[6] == ARGV[4] then
  local m = redis.call('HMGET', meta, 'hour', 'events', 'bytes', 'retry_since_ms', 'attempts', 'first_ms', 'last_ms',
    'sealed_ms')
  return {'ok', m[1], m[2], m[3], m[5], f[3], m[4] or '', f[5], m[6] or m[8] or '', m[7] or m[8] or ''}
end
local now = tonumber(ARGV[2])
if tonumber(f[2] or '0') > now then return {'leased'} end
local key = f[5]
if tonumber(f[3] or '0') > 0 then
  -- the previous claim ended without an outcome: its upload may have landed
  redis.call('HSET', meta, 'uncertain', 1)
  f[4] = '1'
end
if f[4] ~= '1' or not key then
  key = ARGV[5]
  redis.call('HSET', meta, 'key', key)
end
local lease_until = now + tonumber(ARGV[3])
redis.call('HSET', meta, 'lease_owner', ARGV[4], 'lease_until', lease_until)
local claims = redis.call('HINCRBY', meta, 'claims', 1)
local attempts = redis.call('HINCRBY', meta, 'attempts', 1)
redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
local m = redis.call('HMGET', meta, 'hour', 'events', 'bytes', 'retry_since_ms', 'first_ms', 'last_ms', 'sealed_ms')
return {'ok', m[1], m[2], m[3], attempts, claims, m[4] or '', key, m[5] or m[7] or '', m[6] or m[7] or ''}
