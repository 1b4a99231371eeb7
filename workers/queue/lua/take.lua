-- Take the oldest message of a consumer's queue lists and record it as unacknowledged, in one step.
--
-- kombu's Redis transport takes a message with BRPOP and records it (ZADD unacked_index, HSET unacked) in a second
-- command once the worker parsed it: a worker that dies in between loses the message. Here both happen inside one
-- script, so a message is always either on its queue or in the unacked hash, where kombu's restore finds it.
--
-- KEYS[1..n-2]  the queue lists, in the order BRPOP would look at them (queues, then their priority lists)
-- KEYS[n-1]     the unacked index (sorted set: delivery tag -> time taken)
-- KEYS[n]       the unacked hash (delivery tag -> JSON [message, exchange, routing key], as kombu writes it)
-- ARGV[1]       the time taken, in seconds since the epoch (the worker's clock, as kombu's own record)
--
-- Returns false when every list is empty, else {list, message, delivery tag}; the tag is "" for a message whose
-- delivery tag or delivery info cannot be read (it is handed over unrecorded, as kombu would hand it over).

local n = #KEYS
local index, unacked = KEYS[n - 1], KEYS[n]

-- kombu writes a message as a JSON object whose body is a JSON string (its quotes escaped), so an unescaped
-- "delivery_tag": or "delivery_info": can only be a key of its properties. Found by a plain search (memchr speed;
-- a pattern search tries every position of the ~70 KB message), then read by patterns anchored there.
local function after(message, key)
  local _, last = string.find(message, key, 1, true)
  return last and last + 1
end

local function read_properties(message)
  local at_tag, at_info = after(message, '"delivery_tag":'), after(message, '"delivery_info":')
  if not (at_tag and at_info) then
    return nil
  end
  local tag = string.match(message, '^%s*"([^"\\]+)"', at_tag)
  local info = string.match(message, '^%s*(%b{})', at_info)
  if not (tag and info) then
    return nil
  end
  local exchange = string.match(info, '"exchange":%s*"([^"\\]*)"')
  local routing_key = string.match(info, '"routing_key":%s*"([^"\\]*)"')
  if not (exchange and routing_key) then
    return nil
  end
  return tag, exchange, routing_key
end

for i = 1, n - 2 do
  local message = redis.call('RPOP', KEYS[i])
  if message then
    local tag, exchange, routing_key = read_properties(message)
    if not tag then
      return {KEYS[i], message, ''}
    end
    redis.call('ZADD', index, ARGV[1], tag)
    redis.call('HSET', unacked, tag, '[' .. message .. ', "' .. exchange .. '", "' .. routing_key .. '"]')
    return {KEYS[i], message, tag}
  end
end
return false
