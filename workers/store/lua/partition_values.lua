#!lua flags=allow-oom
-- Which values of partition fields may have their own folder this hour: a value already in its field's set is in;
-- a new one joins while the set holds fewer than the bound; any other is refused (it goes under __other__). A set
-- never shrinks and expires at a time fixed by its hour (when no more events of that hour can come), so a decision
-- once made holds for every producer as long as the hour can receive events.
-- KEYS: one set per (hour, field) asked about, all of one integration
-- ARGV: bound, then per key: when its set expires (ms since the epoch), how many values, then the values
-- Returns one 1 (in) or 0 (refused) per value, in order.
local bound = tonumber(ARGV[1])
local out, i = {}, 2
for k = 1, #KEYS do
  local expire_at, n = ARGV[i], tonumber(ARGV[i + 1]); i = i + 2
  for _ = 1, n do
    local value = ARGV[i]; i = i + 1
    if redis.call('SISMEMBER', KEYS[k], value) == 1 then
      out[#out + 1] = 1
    elseif redis.call('SCARD', KEYS[k]) < bound then
      redis.call('SADD', KEYS[k], value)
      redis.call('PEXPIREAT', KEYS[k], expire_at)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
