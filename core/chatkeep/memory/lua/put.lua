-- chatkeep long-term memory: write values of one namespace (one hash tag, one slot).
-- KEYS[1] = namespace index ZSET (key -> expires_at ms, inf = never),
-- KEYS[2..] = value HASHes (d data, b bytes-tagged 1/0, t ttl ms (0 = never), c created, u updated,
-- e embeddings, only when given: a put without them drops the old value's).
-- ARGV: now, fixed ('1'|'0'), then per value: member, data, tagged, ttl ms, embeddings ('' none).
local now = tonumber(ARGV[1])
local fixed = ARGV[2] == '1'
for i = 2, #KEYS do
  local j = 3 + (i - 2) * 5
  local ttl = tonumber(ARGV[j + 3])
  local created = tonumber(redis.call('HGET', KEYS[i], 'c') or now)
  redis.call('HSET', KEYS[i], 'd', ARGV[j + 1], 'b', ARGV[j + 2], 't', ttl, 'c', created, 'u', now)
  if ARGV[j + 4] == '' then
    redis.call('HDEL', KEYS[i], 'e')
  else
    redis.call('HSET', KEYS[i], 'e', ARGV[j + 4])
  end
  if ttl > 0 then
    local at = now + ttl
    if fixed then at = created + ttl end
    redis.call('PEXPIREAT', KEYS[i], at)
    redis.call('ZADD', KEYS[1], at, ARGV[j])
  else
    redis.call('PERSIST', KEYS[i])
    redis.call('ZADD', KEYS[1], 'inf', ARGV[j])
  end
end
-- The index lives as long as its longest-lived member.
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == 'inf' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], top[2]) end
return #KEYS - 1
