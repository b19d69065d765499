-- chatkeep result cache: read an entry, or claim the right to compute it.
-- KEYS[1] = entry STRING, KEYS[2] = its lock (same hash tag).
-- ARGV: token ('' = read only), lock ms. Returns {value|false, claimed 0/1}.
local value = redis.call('GET', KEYS[1])
if value then return {value, 0} end
if ARGV[1] ~= '' and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {false, 1}
end
return {false, 0}
