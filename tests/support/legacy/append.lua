#!lua
-- Append validated event lines to the open hourly buffers of one integration, at most once per message.
--
-- KEYS[1] seen marker of this message   KEYS[2] open index (zset hour -> first append ms)
-- KEYS[3] openbytes (hash hour -> bytes) KEYS[4] stats (hash)   KEYS[5] pending (zset)   KEYS[6] rejections (list)
-- KEYS[7] live (list)  KEYS[8] the delivery overview's block of now (workers/store/overview.py)  KEYS[9] pinned
-- ARGV: now_ms, seen_ttl_ms, cap_bytes, batch_max_events, batch_max_bytes, seal_due_ms, list_max,
--       overview field prefix (hour of the day), overview ttl_s,
--       pin (0: none; p > 0: the live record of line position p; -k: the k-th removed record), pin ttl_ms,
--       the prefixes of _lib.lua (buffer, batch, meta, gen, sealed, delivered, trace_ttl_ms, last),
--       n_counts, (stats field, count) * n_counts, n_records, record * n_records,
--       n_live, (position, record-without-its-closing-generation) * n_live,
--       n_removed, live record of an event the blueprint removed * n_removed,
--       n_groups, then per group: hour, n_ids, batch_id * n_ids, n_lines, line * n_lines
-- A buffer that would pass batch_max_events / batch_max_bytes is sealed first (with the group's next batch id),
-- so no object ever exceeds the limits (a single line larger than batch_max_bytes makes a batch of its own).
-- Lines that would push the integration's buffered bytes over cap_bytes are refused.
-- A live record gets the generation of the buffer its line went into, so its batch (and object) can be traced.
-- The overview counts, in the hour of now, the events accepted (a), removed by the blueprint (f:<reason>) and
-- rejected (r:<reason>, buffer_full included): once per message, like everything else here.
-- The pinned record (a test event's) is also written alone to KEYS[9], so it can be followed however busy the list.
-- Returns {duplicate (0/1), accepted, {refused positions, 1-based over all lines}, {sealed batch ids},
--          opened (1 when an hour's buffer was opened: the due index must learn of it)}.
-- A duplicate still writes (it renews the marker), so a WAIT that follows it covers the first run's writes too.

local now = tonumber(ARGV[1])
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0, {}, {}, 0}
end
local cap = tonumber(ARGV[3])
local max_events = tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[5])
local seal_due = tonumber(ARGV[6])
local list_max = tonumber(ARGV[7])
local ov, hh = KEYS[8], ARGV[8]
local pin, pin_ttl = tonumber(ARGV[10]), ARGV[11]
local p = prefixes(12)
local open_key, openbytes_key, stats_key, pending_key = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local counted = false
local function count(field, n)
  redis.call('HINCRBY', ov, hh .. field, n)
  counted = true
end

local i = 20
local n_counts = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_counts do
  local stat, n = ARGV[i], ARGV[i + 1]
  redis.call('HINCRBY', stats_key, stat, n)
  if string.sub(stat, 1, 9) == 'rejected:' then
    count('r:' .. string.sub(stat, 10), n)
  elseif string.sub(stat, 1, 8) == 'removed:' then
    count('f:' .. string.sub(stat, 9), n)
  end
  i = i + 2
end
local n_records = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_records do
  redis.call('LPUSH', KEYS[6], ARGV[i])
  i = i + 1
end
if n_records > 0 then redis.call('LTRIM', KEYS[6], 0, list_max - 1) end
local live = {}
local n_live = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_live do
  live[tonumber(ARGV[i])] = ARGV[i + 1]
  i = i + 2
end
local n_removed = tonumber(ARGV[i]); i = i + 1
for k = 1, n_removed do
  redis.call('LPUSH', KEYS[7], ARGV[i])
  if pin == -k then redis.call('SET', KEYS[9], ARGV[i], 'PX', pin_ttl) end
  i = i + 1
end

local buffered = tonumber(redis.call('HGET', stats_key, 'buffered_bytes') or '0')
local accepted, accepted_bytes, position = 0, 0, 0
local refused, sealed, opened = {}, {}, 0

local n_groups = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_groups do
  local hour = ARGV[i]; i = i + 1
  local buf = p.buf .. hour
  local gen = generation(p, hour)
  local n_ids = tonumber(ARGV[i]); i = i + 1
  local ids_at, next_id = i, 0
  i = i + n_ids
  local n_lines = tonumber(ARGV[i]); i = i + 1

  local n = redis.call('LLEN', buf)
  local b = tonumber(redis.call('HGET', openbytes_key, hour) or '0')
  local touched = false
  local pend = {}
  local function push_pending()
    local k = 1
    while k <= #pend do
      redis.call('RPUSH', buf, unpack(pend, k, math.min(k + 999, #pend)))
      k = k + 1000
    end
    pend = {}
  end
  local function seal_now()
    if next_id >= n_ids then return end  -- out of ids: let it overflow, the next flush seals it
    push_pending()
    redis.call('HSET', openbytes_key, hour, b)
    local id = ARGV[ids_at + next_id]
    next_id = next_id + 1
    if seal(p, hour, id, open_key, openbytes_key, pending_key, now, seal_due) > 0 then
      sealed[#sealed + 1] = id
      gen = gen + 1
    end
    n, b, touched = 0, 0, false
  end

  for _ = 1, n_lines do
    local line = ARGV[i]; i = i + 1
    position = position + 1
    local len = #line
    if buffered + len > cap then
      refused[#refused + 1] = position
    else
      if n > 0 and (n + 1 > max_events or b + len > max_bytes) then seal_now() end
      if not touched then
        redis.call('HSET', p.last, hour, now)  -- the last append to this hour's buffer: now (the ledger's last event)
        touched = true
      end
      pend[#pend + 1] = line
      if live[position] then
        redis.call('LPUSH', KEYS[7], live[position] .. gen .. '}')
        if pin == position then redis.call('SET', KEYS[9], live[position] .. gen .. '}', 'PX', pin_ttl) end
      end
      if n == 0 then opened = opened + redis.call('ZADD', open_key, 'NX', now, hour) end
      n = n + 1
      b = b + len
      buffered = buffered + len
      accepted = accepted + 1
      accepted_bytes = accepted_bytes + len
      if n >= max_events or b >= max_bytes then
        seal_now()  -- the buffer is full: hand it over now rather than at the next beat
      end
    end
  end
  push_pending()
  if n > 0 then redis.call('HSET', openbytes_key, hour, b) end
end

if accepted > 0 then
  redis.call('HINCRBY', stats_key, 'buffered_bytes', accepted_bytes)
  redis.call('HINCRBY', stats_key, 'buffered_events', accepted)
  redis.call('HINCRBY', stats_key, 'ingested_events', accepted)
  count('a', accepted)
end
if n_live + n_removed > 0 then redis.call('LTRIM', KEYS[7], 0, list_max - 1) end
if #refused > 0 then
  redis.call('HINCRBY', stats_key, 'rejected:buffer_full', #refused)
  count('r:buffer_full', #refused)
end
if counted then redis.call('EXPIRE', ov, ARGV[9], 'NX') end
return {0, accepted, refused, sealed, math.min(opened, 1)}
