-- chatkeep result cache: store an entry and release the lock this caller holds.
-- KEYS[1] = entry STRING, KEYS[2] = its lock. ARGV: value ('' = release only),
-- ttl ms ('0' = never), token ('' = none held).
if ARGV[1] ~= '' then
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
