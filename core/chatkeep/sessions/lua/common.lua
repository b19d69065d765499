-- Shared prelude of the conversation scripts (prepended when a script is loaded).
-- KEYS[1] = messages LIST, KEYS[2] = metadata HASH of one session (same hash tag);
-- then, when ARGV[9] is not '0', the index ZSETs to refresh; last, when ARGV[11]
-- names a command, the session's channel.
-- Hash fields: c created ms, u updated ms, o owner, t session TTL ms ('0' = never),
--              k idempotency ring, v schema version, w writes so far (the version),
--              n length after the last write (a plain read learns it with HMGET),
--              r:<role> messages of each role and tt tokens stored (the analytics every
--              write keeps; a session without tt has not been counted yet).
-- Write ARGV: 1 now, 2 ttl given ('' | ms | '0'), 3 default ttl, 4 fixed ('1'|'0'),
--   5 max messages ('0' = none), 6 owner ('' = unchecked), 7 idempotency key,
--   8 expected version ('' = unchecked | '<c>:<w>' | '-' = no session),
--   9 index ('0' none | '1' write | '2' only for a new session), 10 index member,
--   11 publish ('' | 'PUBLISH' | 'SPUBLISH'), 12... the operation's own.
-- Write reply: {length, expires_at (-1 never, -2 unknown), owner|false, duplicate 0/1,
--   created ms, version, new session 0/1}.
-- commands: PUBLISH SPUBLISH
local RING_BYTES = 512   -- 32 keys of 16 bytes
local MARKER = '\0chatkeep'  -- no record equals it (records are JSON objects)

local function meta_of()
  return redis.call('HMGET', KEYS[2], 'o', 't', 'k', 'c', 'w', 'tt')
end

-- The token count and the role at the start of a record (chatkeep.tokens reads them
-- the same way; anchored, so only the id, the count and the role are looked at): a
-- record written without a count counts a quarter of its length; a role that cannot
-- be read there (an id that needed escaping) is nil.
local HEAD = '^{"v":1,"id":"[^"\\]*","tk":(%d+),"role":"([^"\\]*)",'
local COUNT = '^{"v":1,"id":"[^"\\]*","tk":(%d+),'
local OLD_HEAD = '^{"v":1,"id":"[^"\\]*","role":"([^"\\]*)",'  -- before counts

local function head_of(record)
  local count, role = string.match(record, HEAD)
  if not count then
    count = string.match(record, COUNT)
    if not count then role = string.match(record, OLD_HEAD) end
  end
  return tonumber(count) or math.floor((#record + 3) / 4), role
end

-- Analytics: add (sign 1) or take away (-1) records[from..to] from sums (role ->
-- messages, and tokens under the key false); a role that cannot be read counts
-- under '?'.
local function tally(records, from, to, sign, sums)
  for i = from, to do
    local count, role = head_of(records[i])
    role = role or '?'
    sums[role] = (sums[role] or 0) + sign
    sums[false] = (sums[false] or 0) + sign * count
  end
  return sums
end

-- A session counted before (tt in meta[6]), or without records yet, needs no backfill;
-- else what it holds is counted first (it was written by an older chatkeep).
local function backfill(meta, sums)
  if meta[6] or not meta[4] then return sums end
  local held = redis.call('LRANGE', KEYS[1], 0, -1)
  return tally(held, 1, #held, 1, sums)
end

-- Write the sums into the hash: tt always (so the session counts as counted).
local function counted(sums)
  redis.call('HINCRBY', KEYS[2], 'tt', sums[false] or 0)
  for role, delta in pairs(sums) do
    if role and delta ~= 0 then
      if redis.call('HINCRBY', KEYS[2], 'r:' .. role, delta) <= 0 then
        redis.call('HDEL', KEYS[2], 'r:' .. role)
      end
    end
  end
end

-- Owner check: a given owner must equal the stored one; an owned session needs
-- its owner, and an existing unowned session is not anybody's to claim.
local function owner_ok(stored, given, exists)
  if given == '' then return true end
  if stored then return stored == given end
  return not exists
end

-- The session is still at the version a change made during an outage saw.
local function version_ok(meta, expect)
  if expect == '' then return true end
  if not meta[4] then return expect == '-' end
  return expect == meta[4] .. ':' .. (meta[5] or '0')
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
  local n = redis.call('LLEN', KEYS[1])
  for i = from, to, 1000 do
    n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, to)))
  end
  return n
end

local function trim(n, max, sums)
  if max > 0 and n > max then
    local cut = redis.call('LRANGE', KEYS[1], 0, n - max - 1)
    tally(cut, 1, #cut, -1, sums)
    redis.call('LTRIM', KEYS[1], -max, -1)
    return max
  end
  return n
end

-- The index entries of the session (ZADD, XX for reads that only refresh them).
local function index(at, new, xx)
  local mode = ARGV[9]
  if mode == '0' or (mode == '2' and not new) then return end
  local last = #KEYS
  if ARGV[11] ~= '' then last = last - 1 end
  local score = at
  if at == -1 then score = 'inf' end
  for i = 3, last do
    if xx then
      redis.call('ZADD', KEYS[i], 'XX', score, ARGV[10])
    else
      redis.call('ZADD', KEYS[i], score, ARGV[10])
    end
  end
end

-- The metadata of a write: updated time, version and length, the idempotency key,
-- and for a new session its creation time, schema version and owner; the TTL when given.
local function stamp(meta, now, bump, n)
  local fields = {'u', now, 'w', (tonumber(meta[5]) or 0) + bump, 'n', n}
  if ARGV[7] ~= '' then
    fields[#fields + 1] = 'k'
    fields[#fields + 1] = string.sub(ARGV[7] .. (meta[3] or ''), 1, RING_BYTES)
  end
  if not meta[4] then
    fields[#fields + 1] = 'c'; fields[#fields + 1] = now
    fields[#fields + 1] = 'v'; fields[#fields + 1] = '1'
    if ARGV[6] ~= '' then
      fields[#fields + 1] = 'o'; fields[#fields + 1] = ARGV[6]
    end
  end
  if ARGV[2] ~= '' then fields[#fields + 1] = 't'; fields[#fields + 1] = ARGV[2] end
  redis.call('HSET', KEYS[2], unpack(fields))
  return fields[4]
end

-- The checks every write starts with; returns the reply of a duplicate, or nil. A
-- write seen already is a duplicate before anything else: a replayed change that had
-- reached Redis (its reply lost) changed the version itself.
local function checked(meta)
  if not owner_ok(meta[1], ARGV[6], meta[4] ~= false) then
    return redis.error_reply('CHATKEEP_OWNER')
  end
  if seen(meta[3] or '', ARGV[7]) then
    return {redis.call('LLEN', KEYS[1]), -2, meta[1], 1, meta[4], tonumber(meta[5]) or 0, 0}
  end
  if not version_ok(meta, ARGV[8]) then return redis.error_reply('CHATKEEP_CONFLICT') end
  return nil
end

-- The end of every write: version, TTL, index; the reply.
local function finish(meta, now, n, bump)
  local version = stamp(meta, now, bump, n)
  local new = not meta[4]
  local at = expire(now, ttl_of(ARGV[2], meta[2], ARGV[3]), ARGV[4] == '1', meta[4] or now)
  index(at, new, false)
  local owner = meta[1]
  if new and ARGV[6] ~= '' then owner = ARGV[6] end
  return {n, at, owner or false, 0, meta[4] or now, version, new and 1 or 0}
end
