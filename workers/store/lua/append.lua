#!lua
-- Append the chunks of a message to the open hourly buffers of one integration, at most once per message.
-- A chunk is the NDJSON lines of one message for one hour joined by newlines: one list element, whatever its events.
-- The chunks are not arguments of this script: workers/store/chunks.py RPUSHes each hour's chunks to its buffer in
-- the same MULTI/EXEC, just before it, so Redis never copies their bytes into Lua. This script counts them where they
-- fit, takes them back (RPOP) when a buffer must be sealed first, a chunk cut or refused, and for a duplicate.
--
-- KEYS[1] seen marker of this message   KEYS[2] open index (zset hour -> first append ms)
-- KEYS[3] openbytes (hash hour -> bytes) KEYS[4] stats (hash)   KEYS[5] pending (zset)   KEYS[6] rejections (list)
-- KEYS[7] live (list)  KEYS[8] the delivery overview's block of now (workers/store/overview.py)  KEYS[9] pinned
-- ARGV: now_ms, seen_ttl_ms, cap_bytes, batch_max_events, batch_max_bytes, seal_due_ms, list_max,
--       overview field prefix (hour of the day), overview ttl_s,
--       pin (0: none; p > 0: the live record of line position p; -k: the k-th removed record), pin ttl_ms,
--       the prefixes of _lib.lua (buffer, batch, meta, gen, sealed, delivered, trace_ttl_ms, last, count),
--       n_counts, (stats field, count) * n_counts, n_records, record * n_records,
--       n_live, (position, record-without-its-closing-generation) * n_live,
--       n_removed, live record of an event the blueprint removed * n_removed,
--       n_groups, then per group: hour, n_ids, batch_id * n_ids, n_chunks, (events, bytes) * n_chunks (the chunks
--       themselves are the last n_chunks elements of the hour's buffer),
--       compressed (1 when a chunk is one gzip member, workers/store/elements.py)
-- Positions count lines over all chunks in order. A buffer is filled up to batch_max_events / batch_max_bytes and
-- sealed (with the group's next batch id): a chunk that does not fit whole is cut at a line boundary, its first lines
-- complete the buffer and the rest starts the next one, so no object ever exceeds the limits (a single line larger
-- than batch_max_bytes makes a batch of its own). A chunk that would push the integration's buffered bytes over
-- cap_bytes is refused whole. The counts the thresholds and the seal need are kept beside the list (openbytes,
-- opencount): nothing here looks at a line unless a chunk has to be cut.
-- A live record gets the generation of the buffer its line went into, so its batch (and object) can be traced.
-- The overview counts, in the hour of now, the events accepted (a), removed by the blueprint (f:<reason>) and
-- rejected (r:<reason>, buffer_full included): once per message, like everything else here.
-- The pinned record (a test event's) is also written alone to KEYS[9], so it can be followed however busy the list.
-- A compressed chunk cannot be cut here: when one does not fit whole (a seal first, a cut, a refusal), the script takes
-- every chunk back, changes nothing else, and answers 2, for the caller to send them again inflated.
-- Returns {duplicate (0/1; 2: send the chunks inflated), accepted events, {refused chunks, 1-based over all chunks},
--          {sealed batch ids}, opened (1 when an hour's buffer was opened: the due index must learn of it)}.
-- A duplicate still writes (it renews the marker), so a WAIT that follows it covers the first run's writes too.

local now = tonumber(ARGV[1])
local p = prefixes(12)
local cap = tonumber(ARGV[3])
local max_events = tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[5])

-- Calls f(hour, n_chunks, events, bytes) for each group of chunks, in order, until it returns false.
local function each_group(f)
  local j = 21
  j = j + 1 + 2 * tonumber(ARGV[j])  -- counts
  j = j + 1 + tonumber(ARGV[j])  -- records
  j = j + 1 + 2 * tonumber(ARGV[j])  -- live
  j = j + 1 + tonumber(ARGV[j])  -- removed
  local n_groups = tonumber(ARGV[j]); j = j + 1
  for _ = 1, n_groups do
    local hour, n_ids = ARGV[j], tonumber(ARGV[j + 1])
    local n_chunks = tonumber(ARGV[j + 2 + n_ids])
    j = j + 3 + n_ids
    local events, bytes = 0, 0
    for c = 0, n_chunks - 1 do
      events, bytes = events + tonumber(ARGV[j + 2 * c]), bytes + tonumber(ARGV[j + 2 * c + 1])
    end
    j = j + 2 * n_chunks
    if f(hour, n_chunks, events, bytes) == false then return false end
  end
  return true
end
-- take back the chunks this transaction pushed
local function take_back()
  each_group(function(hour, n_chunks) redis.call('RPOP', p.buf .. hour, n_chunks) end)
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  take_back()  -- the first run appended them already
  return {1, 0, {}, {}, 0}
end
if ARGV[#ARGV] == '1' then
  -- every group must fit its buffer whole, as the common case below finds it
  local buffered = tonumber(redis.call('HGET', KEYS[4], 'buffered_bytes') or '0')
  local fit = each_group(function(hour, n_chunks, events, bytes)
    local n = buffered_events(p, hour, n_chunks)
    local b = tonumber(redis.call('HGET', KEYS[3], hour) or '0')
    if buffered + bytes > cap or n + events > max_events or b + bytes > max_bytes then return false end
    buffered = buffered + bytes
  end)
  if not fit then
    take_back()
    return {2, 0, {}, {}, 0}
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local seal_due = tonumber(ARGV[6])
local list_max = tonumber(ARGV[7])
local ov, hh = KEYS[8], ARGV[8]
local pin, pin_ttl = tonumber(ARGV[10]), ARGV[11]
local open_key, openbytes_key, stats_key, pending_key = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local counted = false
local function count(field, n)
  redis.call('HINCRBY', ov, hh .. field, n)
  counted = true
end

local i = 21
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
for k = i, i + n_removed - 1, 1000 do
  redis.call('LPUSH', KEYS[7], unpack(ARGV, k, math.min(k + 999, i + n_removed - 1)))
end
if pin < 0 then redis.call('SET', KEYS[9], ARGV[i - pin - 1], 'PX', pin_ttl) end
i = i + n_removed

local buffered = tonumber(redis.call('HGET', stats_key, 'buffered_bytes') or '0')
local accepted, accepted_bytes, position, chunk_no = 0, 0, 0, 0
local refused, refused_events, sealed, opened = {}, 0, {}, 0
local live_at = {}  -- the positions of the live records, in order
for q in pairs(live) do live_at[#live_at + 1] = q end
table.sort(live_at)
local next_live = 1
local live_out = {}  -- the records of accepted lines, pushed to the live list at the end in one call

-- The first lines of `text` from byte `from` that fit in room_events events and room_bytes bytes (at least one when
-- `one`): how many, where the last of them ends, and their bytes (newlines not counted).
local function cut(text, from, room_events, room_bytes, one)
  local j, at, bytes = 0, 0, 0
  while j < room_events do
    local nl = string.find(text, '\n', from, true)
    local stop = nl and nl - 1 or #text
    local len = stop - from + 1
    if bytes + len > room_bytes and not (one and j == 0) then break end
    j, at, bytes = j + 1, stop, bytes + len
    if not nl then break end
    from = nl + 1
  end
  return j, at, bytes
end

local n_groups = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_groups do
  local hour = ARGV[i]; i = i + 1
  local buf = p.buf .. hour
  local gen = generation(p, hour)
  local n_ids = tonumber(ARGV[i]); i = i + 1
  local ids_at, next_id = i, 0
  i = i + n_ids
  local n_chunks = tonumber(ARGV[i]); i = i + 1
  local sizes_at = i
  i = i + 2 * n_chunks
  local group_events, group_bytes = 0, 0
  for c = 0, n_chunks - 1 do
    group_events = group_events + tonumber(ARGV[sizes_at + 2 * c])
    group_bytes = group_bytes + tonumber(ARGV[sizes_at + 2 * c + 1])
  end

  local n = buffered_events(p, hour, n_chunks)  -- before this append
  local b = tonumber(redis.call('HGET', openbytes_key, hour) or '0')
  local touched = false
  local pend = {}
  local function push_pending()
    if #pend > 0 then redis.call('RPUSH', buf, unpack(pend)) end
    pend = {}
  end
  local function seal_now()
    if next_id >= n_ids then return false end  -- out of ids: let it overflow, the next flush seals it
    push_pending()
    redis.call('HSET', openbytes_key, hour, b)
    redis.call('HSET', p.count, hour, n)
    local id = ARGV[ids_at + next_id]
    next_id = next_id + 1
    if seal(p, hour, id, open_key, openbytes_key, pending_key, now, seal_due) > 0 then
      sealed[#sealed + 1] = id
      gen = gen + 1
    end
    n, b, touched = 0, 0, false
    return true
  end
  -- the next k lines (bytes without newlines) are in the open buffer: count them, write their live records
  local function counted_in(k, bytes)
    if not touched then
      redis.call('HSET', p.last, hour, now)  -- the last append to this hour's buffer: now (the ledger's last event)
      touched = true
    end
    if n == 0 then opened = opened + redis.call('ZADD', open_key, 'NX', now, hour) end
    local last = position + k
    while next_live <= #live_at and live_at[next_live] <= last do
      local q = live_at[next_live]
      if q > position then
        local record = live[q] .. gen .. '}'
        live_out[#live_out + 1] = record
        if pin == q then redis.call('SET', KEYS[9], record, 'PX', pin_ttl) end
      end
      next_live = next_live + 1
    end
    position = last
    n, b = n + k, b + bytes
    buffered = buffered + bytes
    accepted, accepted_bytes = accepted + k, accepted_bytes + bytes
  end
  local function put(text, k, bytes)
    counted_in(k, bytes)
    pend[#pend + 1] = text
    if #pend == 1000 then push_pending() end
  end

  if buffered + group_bytes <= cap and n + group_events <= max_events and b + group_bytes <= max_bytes then
    -- the common case: the chunks fit, and they are in place already
    for c = 0, n_chunks - 1 do
      chunk_no = chunk_no + 1
      counted_in(tonumber(ARGV[sizes_at + 2 * c]), tonumber(ARGV[sizes_at + 2 * c + 1]))
    end
    if n >= max_events or b >= max_bytes then seal_now() end
  else
    -- take the chunks back (newest first) and place them one by one: seal first, cut, or refuse
    local texts = redis.call('RPOP', buf, n_chunks)
    for c = 0, n_chunks - 1 do
      local k, bytes, text = tonumber(ARGV[sizes_at + 2 * c]), tonumber(ARGV[sizes_at + 2 * c + 1]), texts[n_chunks - c]
      chunk_no = chunk_no + 1
      if buffered + bytes > cap then
        refused[#refused + 1] = chunk_no
        refused_events = refused_events + k
        position = position + k
      else
        local from = 1  -- the rest of the chunk starts here (its pieces are copied once each)
        while k > 0 do
          if n + k <= max_events and b + bytes <= max_bytes then
            put(from == 1 and text or string.sub(text, from), k, bytes)
            k = 0
          else
            -- fill the buffer with the lines that fit (at least one when it is empty), seal it, go on with the rest
            local j, at, jb = cut(text, from, max_events - n, max_bytes - b, n == 0)
            if j > 0 then
              put(string.sub(text, from, at), j, jb)
              from, k, bytes = at + 2, k - j, bytes - jb
            end
            if not seal_now() then
              if k > 0 then put(string.sub(text, from), k, bytes) end
              k = 0
            end
          end
          if n > 0 and (n >= max_events or b >= max_bytes) then
            seal_now()  -- the buffer is full: hand it over now rather than at the next beat
          end
        end
      end
    end
  end
  push_pending()
  if n > 0 then
    redis.call('HSET', openbytes_key, hour, b)
    redis.call('HSET', p.count, hour, n)
  end
end

if accepted > 0 then
  redis.call('HINCRBY', stats_key, 'buffered_bytes', accepted_bytes)
  redis.call('HINCRBY', stats_key, 'buffered_events', accepted)
  redis.call('HINCRBY', stats_key, 'ingested_events', accepted)
  count('a', accepted)
end
for k = 1, #live_out, 1000 do
  redis.call('LPUSH', KEYS[7], unpack(live_out, k, math.min(k + 999, #live_out)))
end
if n_live + n_removed > 0 then redis.call('LTRIM', KEYS[7], 0, list_max - 1) end
if refused_events > 0 then
  redis.call('HINCRBY', stats_key, 'rejected:buffer_full', refused_events)
  count('r:buffer_full', refused_events)
end
if counted then redis.call('EXPIRE', ov, ARGV[9], 'NX') end
return {0, accepted, refused, sealed, math.min(opened, 1)}
