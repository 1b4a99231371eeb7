#!lua flags=allow-oom
-- Move a batch to the dead-letter store: its events stay, with the error, until the user replays it.
-- KEYS[1] batch meta  KEYS[2] pending  KEYS[3] dead  KEYS[4] status  KEYS[5] stats
-- KEYS[6] the delivery overview's block of now
-- ARGV: batch_id, token ('' = whoever holds it), now_ms, code, message, hint,
--       overview block (its key suffix), overview field prefix (hour of the day), overview ttl_s
-- Returns 'ok', 'gone' or 'stale'. Holding a held batch again (a retried call) changes and counts nothing.
-- The overview counts the batch's events as held in this hour; the batch remembers the hour, so a replay takes them
-- back out of it (release.lua).
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return 'gone' end
if ARGV[2] ~= '' and redis.call('HGET', meta, 'lease_owner') ~= ARGV[2] then return 'stale' end
if redis.call('HGET', meta, 'state') == 'dead' then return 'ok' end
redis.call('HSET', meta, 'state', 'dead', 'lease_owner', '', 'lease_until', 0, 'claims', 0,
  'last_failure_ms', ARGV[3], 'held_ms', ARGV[3],
  'error_code', ARGV[4], 'error_message', ARGV[5], 'error_hint', ARGV[6],
  'held_block', ARGV[7], 'held_hh', ARGV[8])
redis.call('HSETNX', meta, 'first_failure_ms', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'failures:' .. ARGV[4], 1)
redis.call('HSET', KEYS[4], 'last_error_code', ARGV[4], 'last_error_message', ARGV[5],
  'last_error_ms', ARGV[3], 'last_error_permanent', 1, 'last_error_hint', ARGV[6])
redis.call('HINCRBY', KEYS[6], ARGV[8] .. 'h', redis.call('HGET', meta, 'events') or 0)
redis.call('EXPIRE', KEYS[6], ARGV[9], 'NX')
return 'ok'
