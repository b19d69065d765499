-- chatkeep long-term memory: live keys of one namespace starting with a prefix.
-- KEYS[1] = namespace index ZSET. ARGV: now, prefix. Expired entries are pruned.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local prefix = ARGV[2]
if prefix == '' then return members end
local out = {}
for _, m in ipairs(members) do
  if string.sub(m, 1, #prefix) == prefix then out[#out + 1] = m end
end
return out
