-- Shared by every checkpointer script. One thread = four keys under one hash tag:
--   KEYS[1] <t>:i  ZSET  "<ns>:<checkpoint id>" (score 0, ordered by the bytes)
--   KEYS[2] <t>:c  HASH  same member -> "<blob refs>\n<header json>\n<checkpoint>"
--   KEYS[3] <t>:b  HASH  "<ns>:<channel>:<version>" -> "<type>\n<bytes>"
--   KEYS[4] <t>:w  ZSET  "<ns>:<checkpoint id>:<task>:<idx>\n<header json>\n<value>"
-- Components are percent-encoded, so ':' and '\n' only ever separate them.

-- Exclusive upper bound of every member that starts with prefix p.
local function upper(p)
  return '(' .. string.sub(p, 1, -2) .. string.char(string.byte(p, -1) + 1)
end

local function refs_of(rec)
  local out = {}
  local nl = string.find(rec, '\n', 1, true)
  if nl then
    for r in string.gmatch(string.sub(rec, 1, nl - 1), '[^ ]+') do
      out[#out + 1] = r
    end
  end
  return out
end

-- Whole-thread TTL. sliding: every key restarts it. fixed: keys share the
-- expiry of the index (counted from the thread's first write).
local function touch(ttl, fixed)
  if ttl <= 0 then
    return
  end
  if fixed == 1 then
    local left = redis.call('PTTL', KEYS[1])
    if left > 0 then
      ttl = left
    end
    for k = 1, 4 do
      if redis.call('PTTL', KEYS[k]) == -1 then
        redis.call('PEXPIRE', KEYS[k], ttl)
      end
    end
  else
    for k = 1, 4 do
      redis.call('PEXPIRE', KEYS[k], ttl)
    end
  end
end

-- Keep the newest `keep` checkpoints of one namespace (members starting with p);
-- drop the others with their writes and the blobs no survivor refers to.
local function trim(p, keep)
  local lo, hi = '[' .. p, upper(p)
  local n = redis.call('ZLEXCOUNT', KEYS[1], lo, hi)
  if n <= keep then
    return 0
  end
  local all = redis.call('ZRANGEBYLEX', KEYS[1], lo, hi)
  local drop = n - keep
  local kept = {}
  for j = drop + 1, n do
    local rec = redis.call('HGET', KEYS[2], all[j])
    if rec then
      for _, r in ipairs(refs_of(rec)) do
        kept[r] = true
      end
    end
  end
  local gone = {}
  for j = 1, drop do
    local m = all[j]
    local rec = redis.call('HGET', KEYS[2], m)
    if rec then
      for _, r in ipairs(refs_of(rec)) do
        if not kept[r] then
          gone[r] = true
        end
      end
    end
    redis.call('HDEL', KEYS[2], m)
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZREMRANGEBYLEX', KEYS[4], '[' .. m .. ':', upper(m .. ':'))
  end
  for r in pairs(gone) do
    redis.call('HDEL', KEYS[3], r)
  end
  return drop
end
