-- chatkeep long-term memory: delete values of one namespace.
-- KEYS[1] = namespace index ZSET, KEYS[2..] = value HASHes; ARGV: members (one per key).
-- Returns how many values existed.
local n = 0
for i = 2, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], ARGV[i - 1])
end
return n
