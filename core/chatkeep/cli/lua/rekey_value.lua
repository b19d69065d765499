-- chatkeep rekey: replace one stored value if it is still what the client read.
-- KEYS[1] = a memory value HASH (ARGV[1] = the field: 'd' the value, 'e' its embeddings)
-- or a cache entry STRING (ARGV[1] = 's': its TTL kept). ARGV[2] = the value read,
-- ARGV[3] = its new form. Reply: 1 replaced, 0 changed meanwhile (left alone).
if ARGV[1] ~= 's' then
  if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
return 1
