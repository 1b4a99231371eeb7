#!lua flags=allow-oom
-- A writer's update of the due index: the tick must look at this integration no later than due_ms. Only ever lowers
-- a score (adding a missing id), and counts the write so that the tick, which read the index before it, cannot move
-- the integration past it (reschedule.lua).
-- KEYS[1] the due index  KEYS[2] versions
-- ARGV: integration id, due_ms
redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
