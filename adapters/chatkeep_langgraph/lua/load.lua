-- ARGV: ttl_ms, fixed, then four counted sections: index members, checkpoint
-- field/value pairs, blob field/value pairs, write members. Merges into the thread.
local at = 3
local n = tonumber(ARGV[at]); at = at + 1
for j = 0, n - 1 do redis.call('ZADD', KEYS[1], 0, ARGV[at + j]) end
at = at + n
n = tonumber(ARGV[at]); at = at + 1
for j = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[at + 2 * j], ARGV[at + 2 * j + 1]) end
at = at + 2 * n
n = tonumber(ARGV[at]); at = at + 1
for j = 0, n - 1 do redis.call('HSET', KEYS[3], ARGV[at + 2 * j], ARGV[at + 2 * j + 1]) end
at = at + 2 * n
n = tonumber(ARGV[at]); at = at + 1
for j = 0, n - 1 do redis.call('ZADD', KEYS[4], 0, ARGV[at + j]) end
touch(tonumber(ARGV[1]), tonumber(ARGV[2]))
return 1
