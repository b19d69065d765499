-- Session metadata, atomically: title and status set or removed, context entries
-- merged; creates the session (no messages) when it does not exist. A write like the
-- others: owner rules, version, TTL on both keys, index entries.
-- ARGV as common.lua's writes, then 12 title and 13 status: '-' keep, '!' remove,
-- '=<text>' set; then pairs (context key, encoded value; '' removes the key). Context
-- entries are hash fields 'x:<key>'. Reply as every write's.
local meta = meta_of()
local refused = checked(meta)
if refused then return refused end
local set, removed = {}, {}
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
for i = 14, #ARGV, 2 do
  field('x:' .. ARGV[i], ARGV[i + 1] == '' and '!' or '=' .. ARGV[i + 1])
end
if #removed > 0 then redis.call('HDEL', KEYS[2], unpack(removed)) end
if #set > 0 then redis.call('HSET', KEYS[2], unpack(set)) end
return finish(meta, tonumber(ARGV[1]), redis.call('LLEN', KEYS[1]), 1)
