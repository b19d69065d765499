-- Append records. ARGV: now, ttl ('' | '0' | ms), default ttl, fixed ('1'|'0'),
-- max messages ('0' = no limit), owner ('' = unchecked), idempotency key, records...
-- With KEYS[3] (the session's channel), the last ARGV is '1' (SPUBLISH) or '0' (PUBLISH)
-- and every appended record is published to KEYS[3].
-- Returns {length, expires_at, owner|false, duplicate 0/1}.
local now = tonumber(ARGV[1])
local last = #ARGV
local pub = false
if #KEYS > 2 then
  pub = ARGV[last] == '1' and 'SPUBLISH' or 'PUBLISH'
  last = last - 1
end
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'k', 'c')
local exists = meta[4] ~= false
if not owner_ok(meta[1], ARGV[6], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local ring = meta[3] or ''
if seen(ring, ARGV[7]) then
  return {redis.call('LLEN', KEYS[1]), -2, meta[1], 1}
end
local n = trim(push(8, last), tonumber(ARGV[5]))
local fields = {'u', now}
if ARGV[7] ~= '' then
  table.insert(fields, 'k'); table.insert(fields, string.sub(ARGV[7] .. ring, 1, RING_BYTES))
end
local owner = meta[1]
if not exists then
  table.insert(fields, 'c'); table.insert(fields, now)
  table.insert(fields, 'v'); table.insert(fields, '1')
  if ARGV[6] ~= '' then
    table.insert(fields, 'o'); table.insert(fields, ARGV[6]); owner = ARGV[6]
  end
end
if ARGV[2] ~= '' then table.insert(fields, 't'); table.insert(fields, ARGV[2]) end
redis.call('HSET', KEYS[2], unpack(fields))
local ttl = ttl_of(ARGV[2], meta[2], ARGV[3])
local at = expire(now, ttl, ARGV[4] == '1', meta[4])
if pub then
  for i = 8, last do redis.call(pub, KEYS[3], ARGV[i]) end
end
return {n, at, owner, 0}
