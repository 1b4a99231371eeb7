#!lua flags=allow-oom
-- Which values of partition fields may have their own folder this hour: a value already in its field's set is in;
-- a new one joins while the set holds fewer than the bound; any other is refused (it goes under __other__). Sets
-- never shrink within their life, so a decision once made holds for every producer.
-- KEYS: one set per (hour, field) asked about, all of one integration
-- ARGV: bound, ttl_ms, then per key: how many values, then the values
-- Returns one 1 (in) or 0 (refused) per value, in order.
local bound, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, i = {}, 3
for k = 1, #KEYS do
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    local value = ARGV[i]; i = i + 1
    if redis.call('SISMEMBER', KEYS[k], value) == 1 then
      out[#out + 1] = 1
    elseif redis.call('SCARD', KEYS[k]) < bound then
      redis.call('SADD', KEYS[k], value)
      redis.call('PEXPIRE', KEYS[k], ttl)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
