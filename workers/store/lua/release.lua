#!lua flags=allow-oom
-- Put a held (dead-letter) batch back in line for delivery: the user fixed the cause and replays it.
-- KEYS[1] batch meta  KEYS[2] pending  KEYS[3] dead
-- ARGV: batch_id, due_ms (when the sweep may dispatch it, if the replaying process does not upload it first)
-- The retry age starts again; attempts keep counting. Returns 'ok', 'gone' or 'not_held'.
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then return 'gone' end
if redis.call('HGET', meta, 'state') ~= 'dead' then return 'not_held' end
redis.call('HSET', meta, 'state', 'pending', 'claims', 0, 'lease_until', 0, 'lease_owner', '')
redis.call('HDEL', meta, 'first_failure_ms', 'held_ms')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 'ok'
