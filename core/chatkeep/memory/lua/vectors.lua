-- chatkeep long-term memory: the embeddings of values of one namespace (no TTL refresh:
-- a search refreshes only the values it returns, by reading them).
-- KEYS = value HASHes. Returns each one's e field (false when it has none or is missing).
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGET', KEYS[i], 'e')
end
return out
