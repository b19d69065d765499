-- Replay of journaled appends of one session, in one call: ARGV[12] = number of
-- parts, then per part its idempotency key, whether it may have reached Redis already
-- ('1': it was sent and no reply came), its record count and its records. A part
-- whose key the session has seen is skipped (it reached Redis before); so is a part
-- that may have reached Redis whose first record's id is among the newest records
-- (its key may have left the ring since). Each part stored adds one to the version,
-- as the mirror counted it. Write ARGV (ARGV[7] unused) and reply as in common.lua;
-- duplicate = parts skipped.
local SCAN = 10000  -- newest records looked at for a part that may have been stored
local now = tonumber(ARGV[1])
local meta = meta_of()
if not owner_ok(meta[1], ARGV[6], meta[4] ~= false) then
  return redis.error_reply('CHATKEEP_OWNER')
end
local ring = meta[3] or ''
local n = redis.call('LLEN', KEYS[1])
local ids = nil
local function stored_before(record)
  local id = string.match(record, '^{"v":1,"id":"([^"\\]*)"')
  if not id then return false end
  if not ids then
    ids = {}
    for _, r in ipairs(redis.call('LRANGE', KEYS[1], -SCAN, -1)) do
      local found = string.match(r, '^{"v":1,"id":"([^"\\]*)"')
      if found then ids[found] = true end
    end
  end
  return ids[id] == true
end
local stored, skipped = 0, 0
local sums = backfill(meta, {})
local at = 13
for _ = 1, tonumber(ARGV[12]) do
  local idem, maybe, count = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  local first, last = at + 3, at + 2 + count
  if seen(ring, idem) or (maybe == '1' and count > 0 and stored_before(ARGV[first])) then
    skipped = skipped + 1
  else
    for i = first, last, 1000 do
      n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, last)))
    end
    tally(ARGV, first, last, 1, sums)
    if idem ~= '' then ring = string.sub(idem .. ring, 1, RING_BYTES) end
    stored = stored + 1
  end
  at = last + 1
end
if stored == 0 then
  return {n, -2, meta[1], skipped, meta[4], tonumber(meta[5]) or 0, 0}
end
n = trim(n, tonumber(ARGV[5]), sums)
counted(sums)
redis.call('HSET', KEYS[2], 'k', ring)
local reply = finish(meta, now, n, stored)
reply[4] = skipped
return reply
