-- Remove the record at an index (Python semantics, -1 = last) and return it.
-- ARGV: now, default ttl, fixed, owner, index, marker, idempotency key, and optionally
-- the start of the record to remove ('{"v":1,"id":"..."'): then the newest record with
-- that start is removed wherever it is, and nothing if none (a replayed removal).
-- Returns {record|false, expires_at, owner|false, length}.
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'k', 'c')
local exists = meta[4] ~= false
if not owner_ok(meta[1], ARGV[4], exists) then return redis.error_reply('CHATKEEP_OWNER') end
if not exists then return {false, -2, false, 0} end
local ring = meta[3] or ''
if seen(ring, ARGV[7]) then return {false, -2, meta[1], redis.call('LLEN', KEYS[1])} end
local index = tonumber(ARGV[5])
local len = redis.call('LLEN', KEYS[1])
if ARGV[8] and ARGV[8] ~= '' then
  index = -1
  local items = redis.call('LRANGE', KEYS[1], 0, -1)
  local size = #ARGV[8]
  for i = #items, 1, -1 do
    if string.sub(items[i], 1, size) == ARGV[8] then index = i - 1; break end
  end
elseif index < 0 then
  index = len + index
end
if index < 0 or index >= len then return {false, -2, meta[1], len} end
local value
if index == len - 1 then
  value = redis.call('RPOP', KEYS[1])
elseif index == 0 then
  value = redis.call('LPOP', KEYS[1])
else
  value = redis.call('LINDEX', KEYS[1], index)
  redis.call('LSET', KEYS[1], index, ARGV[6])
  redis.call('LREM', KEYS[1], 1, ARGV[6])
end
local now = tonumber(ARGV[1])
local fields = {'u', now}
if ARGV[7] ~= '' then
  table.insert(fields, 'k'); table.insert(fields, string.sub(ARGV[7] .. ring, 1, RING_BYTES))
end
redis.call('HSET', KEYS[2], unpack(fields))
local at = expire(now, ttl_of('', meta[2], ARGV[2]), ARGV[3] == '1', meta[4])
return {value, at, meta[1], len - 1}
