-- ARGV: ttl_ms, fixed, member, record, namespace prefix "<ns>:", keep_last (0 = all),
--       blob count n, then n field/value pairs (only channels that changed)
redis.call('ZADD', KEYS[1], 0, ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
local n = tonumber(ARGV[7])
for j = 0, n - 1 do
  redis.call('HSET', KEYS[3], ARGV[8 + 2 * j], ARGV[9 + 2 * j])
end
local keep = tonumber(ARGV[6])
local dropped = 0
if keep > 0 then
  dropped = trim(ARGV[5], keep)
end
touch(tonumber(ARGV[1]), tonumber(ARGV[2]))
return dropped
