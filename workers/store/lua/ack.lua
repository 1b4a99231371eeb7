#!lua flags=allow-oom
-- Finish a batch after S3 confirmed the PUT: delete it, count the delivery and record the object. Idempotent.
-- KEYS[1] batch meta  KEYS[2] batch list  KEYS[3] pending  KEYS[4] dead  KEYS[5] stats  KEYS[6] status
-- KEYS[7] delivered trace of this batch  KEYS[8] upload duration histogram  KEYS[9] event-to-object latency histogram
-- KEYS[10] the delivery overview's block of now  KEYS[11] the object ledger of today  KEYS[12] its last header
-- ARGV: batch_id, now_ms, compressed_bytes, object_key, trace_ttl_ms,
--       upload_us (duration of the successful upload attempt, '' = not observed),
--       overview field prefix (hour of the day), overview ttl_s, ledger ttl_ms, the object's ledger header and record,
--       the overview's latency bounds (n, bound_ms * n),
--       the latency histogram's buckets, then the upload histogram's buckets (each: n, (field, bound_us) * n)
-- The latency is now_ms minus the time the batch's first event was appended (clamped at 0 across host clocks).
-- Returns 1 when this call finished the batch, 0 when it was already gone: a batch is counted once, in the counters,
-- both histograms, the overview and the ledger, however many times it is acked.
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return 0 end
local m = redis.call('HMGET', meta, 'events', 'bytes', 'sealed_ms', 'first_ms')
local events, bytes = tonumber(m[1]), tonumber(m[2])
local now = tonumber(ARGV[2])
local first = tonumber(m[4] or m[3] or now)
redis.call('DEL', meta, KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'buffered_bytes', -bytes)
redis.call('HINCRBY', KEYS[5], 'buffered_events', -events)
redis.call('HINCRBY', KEYS[5], 'delivered_objects', 1)
redis.call('HINCRBY', KEYS[5], 'delivered_events', events)
redis.call('HINCRBY', KEYS[5], 'delivered_bytes', ARGV[3])
redis.call('HSET', KEYS[6], 'last_success_ms', ARGV[2], 'last_object_key', ARGV[4])
redis.call('SET', KEYS[7], ARGV[4], 'PX', ARGV[5])

-- the overview: events, objects and bytes delivered in this hour, and the events by their batch's latency bucket
local ov, hh = KEYS[10], ARGV[7]
local latency_ms = math.max(now - first, 0)
redis.call('HINCRBY', ov, hh .. 'd', events)
redis.call('HINCRBY', ov, hh .. 'o', 1)
redis.call('HINCRBY', ov, hh .. 'b', ARGV[3])
local n_bounds = tonumber(ARGV[12])
local bucket = hh .. 'l+'
for k = 1, n_bounds do
  if latency_ms <= tonumber(ARGV[12 + k]) then
    bucket = hh .. 'l' .. (k - 1)
    break
  end
end
redis.call('HINCRBY', ov, bucket, events)
redis.call('EXPIRE', ov, ARGV[8], 'NX')

-- the ledger: this object's record (packed by workers/store/ledger.py) pushed onto the day's list, after its header
-- when the day's last header is another
if redis.call('GET', KEYS[12]) ~= ARGV[10] then
  redis.call('RPUSH', KEYS[11], ARGV[10])
  redis.call('SET', KEYS[12], ARGV[10], 'PX', ARGV[9])
end
redis.call('RPUSH', KEYS[11], ARGV[11])
redis.call('PEXPIRE', KEYS[11], ARGV[9])

local i = observe(KEYS[9], latency_ms * 1000, 13 + n_bounds)
if ARGV[6] ~= '' then observe(KEYS[8], tonumber(ARGV[6]), i) end
return 1
