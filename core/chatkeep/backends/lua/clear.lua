-- Delete a session. ARGV: owner ('' = unchecked). Returns {existed 0/1, owner|false}.
local meta = redis.call('HMGET', KEYS[2], 'o', 'c')
local exists = meta[2] ~= false
if not owner_ok(meta[1], ARGV[1], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local removed = redis.call('DEL', KEYS[1], KEYS[2])
return {removed > 0 and 1 or 0, meta[1]}
