-- Shared prelude of every chatkeep script (prepended when the script is loaded).
-- KEYS[1] = messages LIST, KEYS[2] = metadata HASH of one session (same hash tag).
-- Hash fields: c created ms, u updated ms, o owner, t session TTL ms ('0' = never),
--              k idempotency ring, v schema version.
local RING_BYTES = 512   -- 32 keys of 16 bytes

-- Owner check: a given owner must equal the stored one; an owned session needs
-- its owner, and an existing unowned session is not anybody's to claim.
local function owner_ok(stored, given, exists)
  if given == '' then return true end
  if stored then return stored == given end
  return not exists
end

local function seen(ring, idem)
  if idem == '' then return false end
  local from = 1
  while true do
    local at = string.find(ring, idem, from, true)
    if not at then return false end
    if (at - 1) % 16 == 0 then return true end
    from = at + 1
  end
end

-- The TTL (ms) that applies: given, else the session's own, else the default; 0 = never.
local function ttl_of(given, stored, default)
  if given ~= '' then return tonumber(given) end
  if stored then return tonumber(stored) end
  return tonumber(default)
end

-- Apply the expiry to both keys; returns expires_at ms, or -1 for never. A sliding
-- TTL counts from now, a fixed one from the session's creation.
local function expire(now, ttl, fixed, created)
  if ttl <= 0 then
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
    return -1
  end
  local at = now + ttl
  if fixed then at = (tonumber(created) or now) + ttl end
  redis.call('PEXPIREAT', KEYS[1], at)
  redis.call('PEXPIREAT', KEYS[2], at)
  return at
end

local function push(from, to)
  to = to or #ARGV
  local n = 0
  for i = from, to, 1000 do
    n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, to)))
  end
  return n
end

local function trim(n, max)
  if max > 0 and n > max then
    redis.call('LTRIM', KEYS[1], -max, -1)
    return max
  end
  return n
end
