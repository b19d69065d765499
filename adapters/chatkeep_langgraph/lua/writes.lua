-- ARGV: ttl_ms, fixed, n, then n triples (prefix "<ns>:<id>:<task>:<idx>\n", member, replace 0/1)
-- A write whose (task, idx) is stored already is skipped, unless it replaces
-- (special channels: error, interrupt, ...), so a replayed call lands once.
local n = tonumber(ARGV[3])
local added = 0
for j = 0, n - 1 do
  local p, m, replace = ARGV[4 + 3 * j], ARGV[5 + 3 * j], ARGV[6 + 3 * j]
  local lo, hi = '[' .. p, upper(p)
  if replace == '1' then
    redis.call('ZREMRANGEBYLEX', KEYS[4], lo, hi)
    added = added + redis.call('ZADD', KEYS[4], 0, m)
  elseif #redis.call('ZRANGEBYLEX', KEYS[4], lo, hi, 'LIMIT', 0, 1) == 0 then
    added = added + redis.call('ZADD', KEYS[4], 0, m)
  end
end
touch(tonumber(ARGV[1]), tonumber(ARGV[2]))
return added
