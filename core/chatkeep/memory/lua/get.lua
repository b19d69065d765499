-- chatkeep long-term memory: read values of one namespace, refreshing sliding TTLs.
-- KEYS[1] = namespace index ZSET, KEYS[2..] = value HASHes.
-- ARGV: now, sliding ('1'|'0'), embeddings too ('1'|'0'), members... (one per value key).
-- Returns data, tagged, ttl (and e, when asked) for each key (false when missing).
local now = tonumber(ARGV[1])
local slide = ARGV[2] == '1'
local fields = {'d', 'b', 't'}
if ARGV[3] == '1' then fields[4] = 'e' end
local out = {}
local moved = false
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], unpack(fields))
  for j = 1, #fields do out[#out + 1] = v[j] end
  local ttl = tonumber(v[3])
  if slide and v[1] and ttl and ttl > 0 then
    redis.call('PEXPIREAT', KEYS[i], now + ttl)
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i + 2])
    moved = true
  end
end
if moved then
  local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if top[2] ~= 'inf' then redis.call('PEXPIREAT', KEYS[1], top[2]) end
end
return out
