-- chatkeep rekey: replace records of one session's LIST where they are still what
-- the client read (a record written, moved or removed meanwhile is left alone).
-- KEYS[1] = messages LIST. ARGV: per record, its index, the record read, its new form.
-- Reply: records replaced.
local done = 0
for i = 1, #ARGV, 3 do
  local at = tonumber(ARGV[i])
  if redis.call('LINDEX', KEYS[1], at) == ARGV[i + 1] then
    redis.call('LSET', KEYS[1], at, ARGV[i + 2])
    done = done + 1
  end
end
return done
