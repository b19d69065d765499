-- Replay of journaled appends of one session, in one call: ARGV[12] = number of
-- parts, then per part its idempotency key, its record count and its records. A part
-- whose key the session has seen is skipped (it reached Redis before); each part
-- that is stored adds one to the version, as the mirror counted it. Write ARGV
-- (ARGV[7] unused) and reply as in common.lua; duplicate = parts skipped.
local now = tonumber(ARGV[1])
local meta = meta_of()
if not owner_ok(meta[1], ARGV[6], meta[4] ~= false) then
  return redis.error_reply('CHATKEEP_OWNER')
end
local ring = meta[3] or ''
local n = redis.call('LLEN', KEYS[1])
local stored, skipped = 0, 0
local at = 13
for _ = 1, tonumber(ARGV[12]) do
  local idem, count = ARGV[at], tonumber(ARGV[at + 1])
  local first, last = at + 2, at + 1 + count
  if seen(ring, idem) then
    skipped = skipped + 1
  else
    for i = first, last, 1000 do
      n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, last)))
    end
    if idem ~= '' then ring = string.sub(idem .. ring, 1, RING_BYTES) end
    stored = stored + 1
  end
  at = last + 1
end
if stored == 0 then
  return {n, -2, meta[1], skipped, meta[4], tonumber(meta[5]) or 0, 0}
end
n = trim(n, tonumber(ARGV[5]))
redis.call('HSET', KEYS[2], 'k', ring)
local reply = finish(meta, now, n, stored)
reply[4] = skipped
return reply
