-- ARGV: checkpoint members to delete (delete_for_runs). Their writes go with them, and
-- the blobs no surviving checkpoint of their namespace refers to.
local dropped = 0
local refs_by_prefix = {}
for _, m in ipairs(ARGV) do
  dropped = dropped + redis.call('ZREM', KEYS[1], m)
  local rec = redis.call('HGET', KEYS[2], m)
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREMRANGEBYLEX', KEYS[4], '[' .. m .. ':', upper(m .. ':'))
  if rec then
    local p = string.sub(m, 1, string.find(m, ':', 1, true))
    local gone = refs_by_prefix[p] or {}
    for _, r in ipairs(refs_of(rec)) do
      gone[r] = true
    end
    refs_by_prefix[p] = gone
  end
end
for p, gone in pairs(refs_by_prefix) do
  for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. p, upper(p))) do
    local rec = redis.call('HGET', KEYS[2], m)
    if rec then
      for _, r in ipairs(refs_of(rec)) do
        gone[r] = nil
      end
    end
  end
  for r in pairs(gone) do
    redis.call('HDEL', KEYS[3], r)
  end
end
return dropped
