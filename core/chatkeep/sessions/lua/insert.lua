-- Insert records before an index (Python list.insert rules): ARGV[12] = index,
-- ARGV[13...] = records. Linear in the list's length: the tail after the index is
-- read once and pushed back after the new records. Write ARGV and reply as in
-- common.lua; ARGV[8] checked.
local now = tonumber(ARGV[1])
local meta = meta_of()
local refused = checked(meta)
if refused then return refused end
local sums = tally(ARGV, 13, #ARGV, 1, backfill(meta, {}))
local len = redis.call('LLEN', KEYS[1])
local index = tonumber(ARGV[12])
if index < 0 then index = math.max(len + index, 0) end
local n
if index >= len then
  n = push(13)
else
  local tail = redis.call('LRANGE', KEYS[1], index, -1)
  if index == 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('LTRIM', KEYS[1], 0, index - 1)
  end
  n = push(13)
  for i = 1, #tail, 1000 do
    n = redis.call('RPUSH', KEYS[1], unpack(tail, i, math.min(i + 999, #tail)))
  end
end
n = trim(n, tonumber(ARGV[5]), sums)
counted(sums)
return finish(meta, now, n, 1)
