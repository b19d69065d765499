-- chatkeep result cache: read an entry, or claim the right to compute it.
-- KEYS[1] = entry STRING, KEYS[2] = its lock (same hash tag).
-- ARGV: token ('' = read only), lock ms. Returns {value|false, claimed 0/1}.
-- A claim is idempotent: a client may run it twice (a retry after a lost reply), and
-- the second run must still report the lock the first one took for this token.
local value = redis.call('GET', KEYS[1])
if value then return {value, 0} end
if ARGV[1] ~= '' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, 1} end
  if redis.call('GET', KEYS[2]) == ARGV[1] then return {false, 1} end
end
return {false, 0}
