-- Give back a session lock. KEYS[1] = the lock key; ARGV[1] = the holder's token.
-- Reply: 1 released, 0 not ours any more (it expired, and maybe someone took it).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
