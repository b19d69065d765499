-- chatkeep result cache: index an entry for clear(); the index lives as long as its
-- longest-lived entry (an entry that never expires makes it persist).
-- KEYS[1] = the namespace's index ZSET (digest -> expires_at ms, inf = never).
-- ARGV: now ms, digest, expires_at ms ('inf' = never).
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
elseif top[2] then
  redis.call('PEXPIREAT', KEYS[1], top[2])
end
return 1
