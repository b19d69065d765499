-- ARGV: keep (newest checkpoints kept per namespace)
local keep = tonumber(ARGV[1])
local seen, order = {}, {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local p = string.sub(m, 1, string.find(m, ':', 1, true))
  if not seen[p] then
    seen[p] = true
    order[#order + 1] = p
  end
end
local dropped = 0
for _, p in ipairs(order) do
  dropped = dropped + trim(p, keep)
end
return dropped
