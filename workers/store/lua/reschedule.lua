#!lua flags=allow-oom
-- The tick's update of the due index, after it handled some integrations: each moves to the time something of it is
-- next due, unless a writer lowered it since the tick read it (its version changed); then it is only lowered further.
-- A writer's lower that changed nothing (its time was later than the score the tick read) still changed the version:
-- whichever runs last, the earliest due time stays and nothing is forgotten.
-- KEYS[1] the due index (zset id -> ms)  KEYS[2] versions (hash id -> number of writes by lower.lua)
-- ARGV: n, then n times: integration id, the version the tick read ('' = not read: only lower), next due ms
--       ('' = the integration is gone and has nothing left: remove it)
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  local id, seen, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  if seen ~= '' and (redis.call('HGET', KEYS[2], id) or '0') == seen then
    if nxt == '' then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
    else
      redis.call('ZADD', KEYS[1], nxt, id)
    end
  elseif nxt ~= '' then
    redis.call('ZADD', KEYS[1], 'LT', nxt, id)
  end
end
return n
