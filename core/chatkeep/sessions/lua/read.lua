-- Read the whole list or its last k records, refreshing a sliding TTL.
-- ARGV: 1 now, 3 default ttl, 4 fixed, 6 owner, 9 index ('0' | '1': refresh entries
-- that exist), 10 index member, 12 last ('0' = all); the others as the writes'
-- (unused). Reply: {expires_at (-2 = no session, -1 = never, -3 = unchanged),
-- owner|false, created|false, version, length, records}.
local meta = meta_of()
local exists = meta[4] ~= false
if not owner_ok(meta[1], ARGV[6], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local last = tonumber(ARGV[12])
local items
if last > 0 then
  items = redis.call('LRANGE', KEYS[1], -last, -1)
else
  items = redis.call('LRANGE', KEYS[1], 0, -1)
end
local len = redis.call('LLEN', KEYS[1])
if not exists then return {-2, false, false, 0, len, items} end
local at = -3  -- unchanged (fixed mode)
if ARGV[4] ~= '1' then
  at = expire(tonumber(ARGV[1]), ttl_of('', meta[2], ARGV[3]), false, nil)
  index(at, false, true)
end
return {at, meta[1], meta[4], tonumber(meta[5]) or 0, len, items}
