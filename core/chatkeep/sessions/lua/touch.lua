-- The read script without the LRANGE: owner check and sliding TTL refresh, for reads
-- that pipeline a plain LRANGE after it. ARGV as read.lua's.
-- Reply: {expires_at, owner|false, created|false, version, length}.
local meta = meta_of()
local exists = meta[4] ~= false
if not owner_ok(meta[1], ARGV[6], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local len = redis.call('LLEN', KEYS[1])
if not exists then return {-2, false, false, 0, len} end
local at = -3
if ARGV[4] ~= '1' then
  at = expire(tonumber(ARGV[1]), ttl_of('', meta[2], ARGV[3]), false, nil)
  index(at, false, true)
end
return {at, meta[1], meta[4], tonumber(meta[5]) or 0, len}
