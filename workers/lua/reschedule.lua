#!lua flags=allow-oom
-- The tick's update of the due index (one key, keys.DUE): each integration it handled moves to the time something of
-- it is next due, unless a writer lowered its score since the tick read it; then the score is only lowered further.
-- Writers (an append that opened a buffer, a seal, a replay) only ever lower a score (ZADD LT), so whichever runs
-- last, the earliest due time stays: nothing is forgotten.
-- KEYS[1] the due index
-- ARGV: n, then n times: integration id, the score the tick read ('' = not read: only lower), next due ms ('' = the
--       integration is gone and has nothing left: remove it)
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  local id, seen, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local current = redis.call('ZSCORE', KEYS[1], id)
  if seen ~= '' and current and tonumber(current) == tonumber(seen) then
    if nxt == '' then
      redis.call('ZREM', KEYS[1], id)
    else
      redis.call('ZADD', KEYS[1], nxt, id)
    end
  elseif nxt ~= '' then
    redis.call('ZADD', KEYS[1], 'LT', nxt, id)
  end
end
return n
