-- Replace every record atomically (ARGV[12...] are the new records). Write ARGV and
-- reply as in common.lua; ARGV[8] checked.
local now = tonumber(ARGV[1])
local meta = meta_of()
local refused = checked(meta)
if refused then return refused end
-- the old records leave the counts (a session never counted has none to take away)
local sums = {}
if meta[6] then
  local old = redis.call('LRANGE', KEYS[1], 0, -1)
  tally(old, 1, #old, -1, sums)
end
redis.call('DEL', KEYS[1])
local n = 0
if #ARGV >= 12 then
  tally(ARGV, 12, #ARGV, 1, sums)
  n = trim(push(12), tonumber(ARGV[5]), sums)
end
counted(sums)
return finish(meta, now, n, 1)
