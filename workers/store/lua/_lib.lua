-- Shared helpers, placed by workers/store/buffer.py after the first line of every script (its `#!lua` line, which must
-- come first: with it, Redis Cluster refuses every access to a key outside the slot of the declared KEYS, instead of
-- allowing it whenever the other slot happens to live on the same node).
-- Key names come from workers/store/keys.py: fixed keys arrive in KEYS, per-hour and per-batch keys are built from
-- prefixes passed in ARGV (all of them carry the integration's hash tag, so every key is in one cluster slot).

-- The prefixes, in the order workers/store/buffer.py passes them, starting at ARGV[i].
-- `last` and `count` are whole key names: the hashes of each open buffer's last append and of its events.
local function prefixes(i)
  return {buf = ARGV[i], batch = ARGV[i + 1], meta = ARGV[i + 2], gen = ARGV[i + 3], sealed = ARGV[i + 4],
          delivered = ARGV[i + 5], trace_ttl_ms = ARGV[i + 6], last = ARGV[i + 7], count = ARGV[i + 8]}
end

-- Events in the open buffer of `hour`, less the last `pushed` elements (chunks an append just pushed): its count, one
-- an element for a buffer written before counts were kept, none when the list holds nothing (a count left by a seal
-- that did not know of counts is stale).
local function buffered_events(p, hour, pushed)
  local listed = redis.call('LLEN', p.buf .. hour) - (pushed or 0)
  if listed <= 0 then return 0 end
  local n = redis.call('HGET', p.count, hour)
  return n and tonumber(n) or listed
end

-- Generation of the open buffer of `hour`: events appended now are sealed under sealed:<hour>:<generation>.
local function generation(p, hour)
  return tonumber(redis.call('GET', p.gen .. hour) or '0')
end

-- Seal the open buffer of `hour` into batch `batch_id`: an O(1) RENAME, so producers start a fresh list at once.
-- The batch becomes immutable; it is indexed in `pending` as due at `due_ms` (the sweep's grace before it may
-- re-dispatch a batch whose upload message was lost). The buffer's generation is traced to the batch id (for the
-- live events view) and the hour moves to the next generation. The batch keeps the time its first event was appended
-- (`first_ms`, the open index's score) for the event-to-object latency, and its last (`last_ms`) for the ledger. Returns the number of events sealed (0: none).
-- A batch id is sealed once: run again with the same id (a client that retried the call after a lost reply), it
-- touches nothing and answers as the first run did, so a buffer filled meanwhile never overwrites the batch.
local function seal(p, hour, batch_id, open_key, openbytes_key, pending_key, now_ms, due_ms)
  local done = redis.call('HGET', p.meta .. batch_id, 'events')
  if done then return tonumber(done) end
  if redis.call('EXISTS', p.delivered .. batch_id) == 1 then return 0 end
  local buf = p.buf .. hour
  local n = buffered_events(p, hour)
  if n == 0 then
    redis.call('ZREM', open_key, hour)
    redis.call('HDEL', openbytes_key, hour)
    redis.call('HDEL', p.last, hour)
    redis.call('HDEL', p.count, hour)
    return 0
  end
  local bytes = tonumber(redis.call('HGET', openbytes_key, hour) or '0')
  local first_ms = tonumber(redis.call('ZSCORE', open_key, hour) or now_ms)
  local last_ms = tonumber(redis.call('HGET', p.last, hour) or now_ms)
  redis.call('RENAME', buf, p.batch .. batch_id)
  redis.call('ZREM', open_key, hour)
  redis.call('HDEL', openbytes_key, hour)
  redis.call('HDEL', p.last, hour)
  redis.call('HDEL', p.count, hour)
  redis.call('HSET', p.meta .. batch_id,
    'hour', hour, 'events', n, 'bytes', bytes, 'sealed_ms', now_ms, 'first_ms', string.format('%d', first_ms),
    'last_ms', string.format('%d', last_ms), 'state', 'pending', 'attempts', 0, 'claims', 0, 'uncertain', 0)
  redis.call('ZADD', pending_key, due_ms, batch_id)
  local gen = generation(p, hour)
  redis.call('SET', p.sealed .. hour .. ':' .. gen, batch_id, 'PX', p.trace_ttl_ms)
  redis.call('SET', p.gen .. hour, gen + 1, 'PX', p.trace_ttl_ms)
  return n
end

-- Count one observation in a histogram hash of cumulative counters (workers/observe/metrics.py reads it): every bucket
-- `le:<bound>` whose bound is >= value_us, then `count` and `sum_us`. ARGV[i] is the number of buckets, followed by
-- that many (field, bound_us) pairs. value_us must be an integer. Returns the index after the buckets.
local function observe(key, value_us, i)
  local n = tonumber(ARGV[i])
  for j = 1, n do
    if value_us <= tonumber(ARGV[i + 2 * j]) then
      redis.call('HINCRBY', key, ARGV[i + 2 * j - 1], 1)
    end
  end
  redis.call('HINCRBY', key, 'count', 1)
  redis.call('HINCRBY', key, 'sum_us', string.format('%d', value_us))
  return i + 1 + 2 * n
end
