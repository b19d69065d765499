-- Read the newest records whose token counts fit in a budget, refreshing a sliding TTL
-- as read.lua does. ARGV as read.lua's, with 12 the budget (tokens) and 13 '1' to
-- count a leading system message first (kept if it fits). Work is bounded by what is
-- returned: the tail is read backwards in chunks of 16, 32, 64... records (at most
-- 256), so a script reads at most about twice what it returns (every record read is
-- copied into Lua, which costs more than the matching).
-- A record's count is its "tk" field, which the writer puts right after the id; a
-- record without one counts a quarter of its length (chatkeep.tokens does the same).
-- Reply: {expires_at (-2 = no session), owner|false, created|false, version, length,
--   tail records (oldest first), the system record or false}.
local CHUNK, MAX_CHUNK = 16, 256

local meta = meta_of()
local exists = meta[4] ~= false
if not owner_ok(meta[1], ARGV[6], exists) then return redis.error_reply('CHATKEEP_OWNER') end
local budget = tonumber(ARGV[12])
local len = redis.call('LLEN', KEYS[1])
local first = 0
local head = false
if ARGV[13] == '1' and len > 0 then
  local record = redis.call('LINDEX', KEYS[1], 0)
  local count, role = head_of(record)
  if role == 'system' then
    first = 1
    if count <= budget then
      head = record
      budget = budget - count
    else
      budget = -1  -- the system message does not fit: nothing after it is returned
    end
  end
end
local taken = {}
local total = 0
local stop = len
while stop > first and budget >= 0 do
  local from = math.max(first, stop - CHUNK)
  CHUNK = math.min(CHUNK * 2, MAX_CHUNK)
  local chunk = redis.call('LRANGE', KEYS[1], from, stop - 1)
  local full = false
  for i = #chunk, 1, -1 do
    local count = head_of(chunk[i])
    if total + count > budget then
      full = true
      break
    end
    total = total + count
    taken[#taken + 1] = chunk[i]
  end
  if full then break end
  stop = from
end
local records = {}
for i = #taken, 1, -1 do records[#records + 1] = taken[i] end
if not exists then return {-2, false, false, 0, len, records, false} end
local at = -3  -- unchanged (fixed mode)
if ARGV[4] ~= '1' then
  at = expire(tonumber(ARGV[1]), ttl_of('', meta[2], ARGV[3]), false, nil)
  index(at, false, true)
end
return {at, meta[1], meta[4], tonumber(meta[5]) or 0, len, records, head}
