-- Insert records before an index (Python list.insert semantics).
-- ARGV: now, default ttl, fixed, max messages, owner, index, marker, idempotency key, records...
-- Returns {length, expires_at, owner|false, duplicate 0/1}.
local now = tonumber(ARGV[1])
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'k', 'c')
local exists = meta[4] ~= false
if not owner_ok(meta[1], ARGV[5], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local ring = meta[3] or ''
if seen(ring, ARGV[8]) then return {redis.call('LLEN', KEYS[1]), -2, meta[1], 1} end
local len = redis.call('LLEN', KEYS[1])
local index = tonumber(ARGV[6])
if index < 0 then index = math.max(len + index, 0) end
local n
if index >= len then
  n = push(9)
else
  local pivot = redis.call('LINDEX', KEYS[1], index)
  redis.call('LSET', KEYS[1], index, ARGV[7])
  for i = 9, #ARGV do
    n = redis.call('LINSERT', KEYS[1], 'BEFORE', ARGV[7], ARGV[i])
  end
  redis.call('LSET', KEYS[1], index + #ARGV - 8, pivot)
end
n = trim(n, tonumber(ARGV[4]))
local fields = {'u', now}
if ARGV[8] ~= '' then
  table.insert(fields, 'k'); table.insert(fields, string.sub(ARGV[8] .. ring, 1, RING_BYTES))
end
local owner = meta[1]
if not exists then
  table.insert(fields, 'c'); table.insert(fields, now)
  table.insert(fields, 'v'); table.insert(fields, '1')
  if ARGV[5] ~= '' then
    table.insert(fields, 'o'); table.insert(fields, ARGV[5]); owner = ARGV[5]
  end
end
redis.call('HSET', KEYS[2], unpack(fields))
local at = expire(now, ttl_of('', meta[2], ARGV[2]), ARGV[3] == '1', meta[4])
return {n, at, owner, 0}
