-- Delete a session. ARGV: 1 owner ('' = unchecked), 2 expected version (as ARGV[8]
-- of the writes). Reply: {existed 0/1, owner|false}.
local meta = redis.call('HMGET', KEYS[2], 'o', 't', 'k', 'c', 'w')
if not owner_ok(meta[1], ARGV[1], meta[4] ~= false) then
  return redis.error_reply('CHATKEEP_OWNER')
end
if not meta[4] then  -- nothing to delete (a replayed clear that reached Redis, say)
  redis.call('DEL', KEYS[1])
  return {0, false}
end
if not version_ok(meta, ARGV[2]) then return redis.error_reply('CHATKEEP_CONFLICT') end
local removed = redis.call('DEL', KEYS[1], KEYS[2])
return {removed > 0 and 1 or 0, meta[1]}
