#!lua flags=allow-oom
-- The lock that serialises commits to one Iceberg table across the fleet, with a fencing token.
-- KEYS[1] the lock (its holder's token)  KEYS[2] the table's fence counter
-- ARGV: 'take' or 'give', the holder's token; take: the lease in ms, and the fence the table's last commit recorded
-- take: returns the new fence (larger than any before it, and than the table's) when the lock was free, else 0.
-- give: frees the lock only if the token still holds it; returns 1 if it did, else 0.
if ARGV[1] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
    -- the counter may be behind the table (a Redis restored from backup, the table reached by another name)
    if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[4] or '0') then
      redis.call('SET', KEYS[2], ARGV[4])
    end
    return redis.call('INCR', KEYS[2])
  end
  return 0
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
