-- ARGV: max bound, min bound, count, ttl_ms, fixed(0/1)
-- -> { {member, record, {blob...}, {write member...}}, ... } newest first
local found = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, m in ipairs(found) do
  local rec = redis.call('HGET', KEYS[2], m)
  if rec then
    local refs = refs_of(rec)
    local blobs = {}
    if #refs > 0 then
      blobs = redis.call('HMGET', KEYS[3], unpack(refs))
    end
    local writes = redis.call('ZRANGEBYLEX', KEYS[4], '[' .. m .. ':', upper(m .. ':'))
    out[#out + 1] = {m, rec, blobs, writes}
  end
end
if tonumber(ARGV[5]) == 0 then
  touch(tonumber(ARGV[4]), 0)
end
return out
