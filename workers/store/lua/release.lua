#!lua flags=allow-oom
-- Put a held (dead-letter) batch back in line for delivery: the user fixed the cause and replays it.
-- KEYS[1] batch meta  KEYS[2] pending  KEYS[3] dead
-- ARGV: batch_id, due_ms (when the sweep may dispatch it, if the replaying process does not upload it first),
--       the overview's key prefix (the block the batch was held in is appended to it)
-- The retry age starts again; attempts keep counting, and the first failure stays what it was (a replay that fails
-- again keeps it). The overview takes the events back out of the hour they were held in, while it still has it.
-- Returns 'ok', 'gone' or 'not_held'.
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return 'gone' end
if redis.call('HGET', meta, 'state') ~= 'dead' then return 'not_held' end
local held = redis.call('HMGET', meta, 'held_block', 'held_hh', 'events')
if held[1] and held[2] then
  local ov = ARGV[3] .. held[1]
  if redis.call('EXISTS', ov) == 1 then redis.call('HINCRBY', ov, held[2] .. 'h', -tonumber(held[3] or '0')) end
end
redis.call('HSET', meta, 'state', 'pending', 'claims', 0, 'lease_until', 0, 'lease_owner', '')
redis.call('HDEL', meta, 'held_ms', 'held_block', 'held_hh', 'retry_since_ms')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 'ok'
