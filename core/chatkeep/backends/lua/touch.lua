-- The read script without the LRANGE: owner check and sliding TTL refresh, for reads
-- that pipeline a plain LRANGE after it. ARGV as read.lua.
-- Returns {expires_at (-2 = no session, -1 = never, -3 = unchanged), owner|false}.
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'c')
local exists = meta[3] ~= false
if not owner_ok(meta[1], ARGV[4], exists) then return redis.error_reply('CHATKEEP_OWNER') end
if not exists then return {-2, false} end
local at = -3
if ARGV[3] ~= '1' then
  at = expire(tonumber(ARGV[1]), ttl_of('', meta[2], ARGV[2]), false, nil)
end
return {at, meta[1]}
