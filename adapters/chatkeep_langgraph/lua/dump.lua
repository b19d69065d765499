-- -> {index members, checkpoint field/values, blob field/values, write members}
return {
  redis.call('ZRANGE', KEYS[1], 0, -1),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('ZRANGE', KEYS[4], 0, -1),
}
