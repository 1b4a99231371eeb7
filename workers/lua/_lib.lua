-- Shared helpers, prepended to every script by workers/buffer.py.
-- Key names come from workers/keys.py: fixed keys arrive in KEYS, per-hour and per-batch keys are built from
-- prefixes passed in ARGV (all of them carry the integration's hash tag, so every key is in one cluster slot).

-- Seal the open buffer of `hour` into batch `batch_id`: an O(1) RENAME, so producers start a fresh list at once.
-- The batch becomes immutable; it is indexed in `pending` as due at `due_ms` (the sweep's grace before it may
-- re-dispatch a batch whose upload message was lost). Returns the number of events sealed (0: nothing to seal).
local function seal(buf, hour, batch_id, open_key, openbytes_key, pending_key, batch_prefix, meta_prefix, now_ms, due_ms)
  local n = redis.call('LLEN', buf)
  if n == 0 then
    redis.call('ZREM', open_key, hour)
    redis.call('HDEL', openbytes_key, hour)
    return 0
  end
  local bytes = tonumber(redis.call('HGET', openbytes_key, hour) or '0')
  redis.call('RENAME', buf, batch_prefix .. batch_id)
  redis.call('ZREM', open_key, hour)
  redis.call('HDEL', openbytes_key, hour)
  redis.call('HSET', meta_prefix .. batch_id,
    'hour', hour, 'events', n, 'bytes', bytes, 'sealed_ms', now_ms,
    'state', 'pending', 'attempts', 0, 'claims', 0, 'uncertain', 0)
  redis.call('ZADD', pending_key, due_ms, batch_id)
  return n
end
