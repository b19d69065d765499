-- Read the whole list or its last k records, refreshing a sliding TTL.
-- ARGV: now, default ttl, fixed ('1'|'0'), owner ('' = unchecked), last ('0' = all).
-- Returns {expires_at (-2 = no session, -1 = never), owner|false, records}.
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'c')
local exists = meta[3] ~= false
if not owner_ok(meta[1], ARGV[4], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local last = tonumber(ARGV[5])
local items
if last > 0 then
  items = redis.call('LRANGE', KEYS[1], -last, -1)
else
  items = redis.call('LRANGE', KEYS[1], 0, -1)
end
if not exists then return {-2, false, items} end
local at = -3  -- unchanged (fixed mode)
if ARGV[3] ~= '1' then
  at = expire(tonumber(ARGV[1]), ttl_of('', meta[2], ARGV[2]), false, nil)
end
return {at, meta[1], items}
