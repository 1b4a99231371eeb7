#!lua flags=allow-oom
-- Record a transient upload failure and when the batch is due again (the durable retry state).
-- KEYS[1] batch meta  KEYS[2] pending  KEYS[3] status  KEYS[4] stats
-- ARGV: batch_id, token, now_ms, retry_at_ms, code, message
-- Returns 'ok', 'gone' (already delivered) or 'stale' (another uploader holds the lease now).
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return 'gone' end
if redis.call('HGET', meta, 'lease_owner') ~= ARGV[2] then return 'stale' end
redis.call('HSET', meta, 'lease_owner', '', 'lease_until', 0, 'claims', 0, 'uncertain', 1,
  'last_failure_ms', ARGV[3], 'error_code', ARGV[5], 'error_message', ARGV[6], 'retry_at_ms', ARGV[4])
redis.call('HSETNX', meta, 'first_failure_ms', ARGV[3])  -- shown to the user, kept through replays
redis.call('HSETNX', meta, 'retry_since_ms', ARGV[3])  -- the retry age, which a replay starts again
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'failures:' .. ARGV[5], 1)
redis.call('HINCRBY', KEYS[4], 'retries', 1)
redis.call('HSET', KEYS[3], 'last_error_code', ARGV[5], 'last_error_message', ARGV[6],
  'last_error_ms', ARGV[3], 'last_error_permanent', 0, 'last_error_hint', '')
return 'ok'
