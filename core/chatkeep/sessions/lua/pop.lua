-- Remove the record at an index (Python rules, -1 = last) and return it: ARGV[12] =
-- index; ARGV[13], when not '', the start of the record to remove ('{"v":1,"id":"..."'):
-- then the newest record with that start is removed wherever it is, and nothing if
-- there is none (a replayed removal). Write ARGV as in common.lua (ARGV[2], [5], [9]
-- and [11] unused); ARGV[8] checked.
-- Reply: {record|false, expires_at, owner|false, length, created|false, version}.
local meta = meta_of()
if not owner_ok(meta[1], ARGV[6], meta[4] ~= false) then
  return redis.error_reply('CHATKEEP_OWNER')
end
if not meta[4] then return {false, -2, false, 0, false, 0} end  -- nothing to remove
local version = tonumber(meta[5]) or 0
if seen(meta[3] or '', ARGV[7]) then
  return {false, -2, meta[1], redis.call('LLEN', KEYS[1]), meta[4], version}
end
if not version_ok(meta, ARGV[8]) then return redis.error_reply('CHATKEEP_CONFLICT') end
local len = redis.call('LLEN', KEYS[1])
local index = tonumber(ARGV[12])
local start = ARGV[13]
if start and start ~= '' then
  index = -1
  local items = redis.call('LRANGE', KEYS[1], 0, -1)
  local size = #start
  for i = #items, 1, -1 do
    if string.sub(items[i], 1, size) == start then index = i - 1; break end
  end
elseif index < 0 then
  index = len + index
end
if index < 0 or index >= len then return {false, -2, meta[1], len, meta[4], version} end
local value
if index == len - 1 then
  value = redis.call('RPOP', KEYS[1])
elseif index == 0 then
  value = redis.call('LPOP', KEYS[1])
else
  value = redis.call('LINDEX', KEYS[1], index)
  redis.call('LSET', KEYS[1], index, MARKER)
  redis.call('LREM', KEYS[1], 1, MARKER)
end
if meta[6] then
  counted(tally({value}, 1, 1, -1, {}))
else  -- never counted: count what is left
  counted(backfill(meta, {}))
end
local now = tonumber(ARGV[1])
version = stamp(meta, now, 1, len - 1)
local at = expire(now, ttl_of('', meta[2], ARGV[3]), ARGV[4] == '1', meta[4])
return {value, at, meta[1], len - 1, meta[4], version}
