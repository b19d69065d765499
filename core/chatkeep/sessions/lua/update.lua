-- Session metadata, atomically: title and status set or removed, context entries
-- merged; creates the session (no messages) when it does not exist. A write like the
-- others: owner rules, version, TTL on both keys, index entries.
-- ARGV as common.lua's writes, then 12 title and 13 status: '-' keep, '!' remove,
-- '=<text>' set; 14 the call's time for a journaled update ('' = now), 15 the creation
-- time of the session it was made for ('' = any); then pairs (context key, encoded
-- value; '' removes the key). Context entries are hash fields 'x:<key>'; 'm' is the
-- time of the last metadata change. A journaled update older than that change, or
-- made for a session since deleted, is a conflict. Reply as every write's.
local meta = meta_of()
local refused = checked(meta)
if refused then return refused end
local at, made = ARGV[14], ARGV[15]
if made ~= '' and meta[4] ~= made then return redis.error_reply('CHATKEEP_CONFLICT') end
if at == '' then
  at = ARGV[1]
else
  local last = redis.call('HGET', KEYS[2], 'm')
  if last and tonumber(last) > tonumber(at) then
    return redis.error_reply('CHATKEEP_CONFLICT')
  end
end
local set, removed = {'m', at}, {}
local function field(name, action)
  if action == '!' then
    removed[#removed + 1] = name
  elseif action ~= '-' then
    set[#set + 1] = name
    set[#set + 1] = string.sub(action, 2)
  end
end
field('h', ARGV[12])
field('s', ARGV[13])
for i = 16, #ARGV, 2 do
  field('x:' .. ARGV[i], ARGV[i + 1] == '' and '!' or '=' .. ARGV[i + 1])
end
-- in slices: unpack() refuses a few thousand values, and nothing may fail halfway
for i = 1, #removed, 1000 do
  redis.call('HDEL', KEYS[2], unpack(removed, i, math.min(i + 999, #removed)))
end
for i = 1, #set, 1000 do  -- pairs: 1000 is even
  redis.call('HSET', KEYS[2], unpack(set, i, math.min(i + 999, #set)))
end
return finish(meta, tonumber(ARGV[1]), redis.call('LLEN', KEYS[1]), 1)
