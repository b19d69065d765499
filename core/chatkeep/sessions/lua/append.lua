-- Append records. The hot path of every turn has an ARGV of its own (fewer arguments):
-- 1 now, 2 ttl given ('' | ms | '0'), 3 default ttl, 4 fixed ('1'|'0'), 5 max messages,
-- 6 owner ('' = unchecked), 7 idempotency key, 8 extras: 'I' = write the index keys
-- (KEYS[3...]) with ARGV[9] as their member, 'P'/'S' = PUBLISH/SPUBLISH every record to
-- the channel (the last key); then the records. Reply as in common.lua.
-- The hot path of every turn: written out inline (no helper calls, no tables for
-- the usual call: an existing session, no idempotency key, no TTL given); the rules
-- are those of common.lua's owner_ok, seen, stamp, expire and index.
local now = tonumber(ARGV[1])
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'k', 'c', 'w', 'tt')
local owner, created, given, idem = meta[1], meta[4], ARGV[6], ARGV[7]
if given ~= '' and (owner and owner ~= given or not owner and created) then
  return redis.error_reply('CHATKEEP_OWNER')
end
local ring = meta[3] or ''
local version = tonumber(meta[5]) or 0
if idem ~= '' then
  local from = 1
  while true do
    local at = string.find(ring, idem, from, true)
    if not at then break end
    if (at - 1) % 16 == 0 then
      return {redis.call('LLEN', KEYS[1]), -2, owner, 1, created, version, 0}
    end
    from = at + 1
  end
end
local extras = ARGV[8]
local indexed = string.find(extras, 'I', 1, true)
local first = indexed and 10 or 9
local last = #ARGV
local sums = tally(ARGV, first, last, 1, backfill(meta, {}))
local n
for i = first, last, 1000 do
  n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, last)))
end
local max = tonumber(ARGV[5])
if max > 0 and n > max then
  local cut = redis.call('LRANGE', KEYS[1], 0, n - max - 1)
  tally(cut, 1, #cut, -1, sums)
  redis.call('LTRIM', KEYS[1], -max, -1)
  n = max
end
counted(sums)
version = version + 1
local ttl = ARGV[2]
if created and idem == '' and ttl == '' then
  redis.call('HSET', KEYS[2], 'u', now, 'w', version, 'n', n)
else
  local fields = {'u', now, 'w', version, 'n', n}
  if idem ~= '' then
    fields[#fields + 1] = 'k'; fields[#fields + 1] = string.sub(idem .. ring, 1, RING_BYTES)
  end
  if not created then
    fields[#fields + 1] = 'c'; fields[#fields + 1] = now
    fields[#fields + 1] = 'v'; fields[#fields + 1] = '1'
    if given ~= '' then
      fields[#fields + 1] = 'o'; fields[#fields + 1] = given; owner = given
    end
  end
  if ttl ~= '' then fields[#fields + 1] = 't'; fields[#fields + 1] = ttl end
  redis.call('HSET', KEYS[2], unpack(fields))
end
if ttl == '' then ttl = meta[2] or ARGV[3] end
ttl = tonumber(ttl)
local at = -1
if ttl <= 0 then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
else
  at = now + ttl
  if ARGV[4] == '1' then at = (tonumber(created) or now) + ttl end
  redis.call('PEXPIREAT', KEYS[1], at)
  redis.call('PEXPIREAT', KEYS[2], at)
end
if extras ~= '' then
  local keys = #KEYS
  local pub = string.find(extras, 'P', 1, true) and 'PUBLISH'
    or string.find(extras, 'S', 1, true) and 'SPUBLISH'
  if pub then
    for i = first, last do redis.call(pub, KEYS[keys], ARGV[i]) end
    keys = keys - 1
  end
  if indexed then
    local score = at
    if at == -1 then score = 'inf' end
    for i = 3, keys do redis.call('ZADD', KEYS[i], score, ARGV[9]) end
  end
end
return {n, at, owner, 0, created or now, version, created and 0 or 1}
