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
-- Returns false when every list is empty, else {list, message, delivery tag}; the tag is "" for a message that is
-- not one of kombu's (not JSON, no delivery tag or info): handed over unrecorded, as BRPOP would.

local n = #KEYS
local index, unacked = KEYS[n - 1], KEYS[n]

-- Where kombu's own properties are: kombu writes a message as a JSON object whose last key is "properties", whose
-- last keys are "delivery_info" and "delivery_tag" (basic_publish adds them), and whose strings have their quotes
-- escaped. So the last unescaped "delivery_tag": and "delivery_info": of the message are those of its properties
-- (a header of the same name comes before them). Found by plain searches (memchr speed) in the message's tail, then
-- read by patterns anchored there; anything else (an escaped name, another layout) is read by cjson.
local TAIL = 4096

local function last(message, key)
  local from, found = math.max(1, #message - TAIL), nil
  while true do
    local _, stop = string.find(message, key, from, true)
    if not stop then
      return found
    end
    found, from = stop + 1, stop + 1
  end
end

local function read_quickly(message)
  local at_tag, at_info = last(message, '"delivery_tag":'), last(message, '"delivery_info":')
  if not (at_tag and at_info and at_info < at_tag) then
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
  return tag, '"' .. exchange .. '"', '"' .. routing_key .. '"'
end

local function read_fully(message)
  local ok, decoded = pcall(cjson.decode, message)
  if not (ok and type(decoded) == 'table' and type(decoded.properties) == 'table') then
    return nil
  end
  local tag, info = decoded.properties.delivery_tag, decoded.properties.delivery_info
  if type(tag) ~= 'string' or tag == '' or type(info) ~= 'table' then
    return nil
  end
  local exchange, routing_key = info.exchange, info.routing_key
  if type(exchange) ~= 'string' or type(routing_key) ~= 'string' then
    return nil
  end
  return tag, cjson.encode(exchange), cjson.encode(routing_key)
end

for i = 1, n - 2 do
  local message = redis.call('RPOP', KEYS[i])
  if message then
    local tag, exchange, routing_key = read_quickly(message)
    if not tag then
      tag, exchange, routing_key = read_fully(message)
    end
    if not tag then  -- not a message of kombu's: handed over as BRPOP would, kombu reports it
      return {KEYS[i], message, ''}
    end
    redis.call('ZADD', index, ARGV[1], tag)
    redis.call('HSET', unacked, tag, '[' .. message .. ', ' .. exchange .. ', ' .. routing_key .. ']')
    return {KEYS[i], message, tag}
  end
end
return false
