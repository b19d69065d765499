-- Take a session lock. KEYS[1] = the lock key; ARGV[1] = the holder's token,
-- ARGV[2] = how long the lock lives in ms ('0' = until released).
-- Reply: 1 taken (or already ours: a client retry re-sent this call after its
-- first run took the lock), 0 held by someone else.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  if ARGV[2] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return 1
end
if holder then
  return 0
end
if ARGV[2] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
