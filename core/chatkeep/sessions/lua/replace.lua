-- Replace every record atomically (ARGV[12...] are the new records). Write ARGV and
-- reply as in common.lua; ARGV[8] checked.
local now = tonumber(ARGV[1])
local meta = meta_of()
local refused = checked(meta)
if refused then return refused end
redis.call('DEL', KEYS[1])
local n = 0
if #ARGV >= 12 then n = trim(push(12), tonumber(ARGV[5])) end
return finish(meta, now, n, 1)
