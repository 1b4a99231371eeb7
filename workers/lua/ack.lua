-- Finish a batch after S3 confirmed the PUT: delete it and count the delivery. Idempotent.
-- KEYS[1] batch meta  KEYS[2] batch list  KEYS[3] pending  KEYS[4] dead  KEYS[5] stats  KEYS[6] status
-- KEYS[7] delivered trace of this batch
-- ARGV: batch_id, now_ms, compressed_bytes, object_key, trace_ttl_ms
-- Returns 1 when this call finished the batch, 0 when it was already gone.
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return 0 end
local m = redis.call('HMGET', meta, 'events', 'bytes', 'sealed_ms')
local events, bytes = tonumber(m[1]), tonumber(m[2])
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
return 1
