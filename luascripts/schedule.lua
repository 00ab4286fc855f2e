-- schedule.lua: create an event unless its identity already exists.
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member       <app>/<id>
-- ARGV[2] due time, ms
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message (the shard number)
-- ARGV[5] now, ms (0: use the Redis server clock)
-- ARGV[6] wake horizon, ms: publish only when the event is due within it
-- ARGV[7..] field, value pairs of the event hash (long values already in
--          chunks, see long_set in prelude.lua; no status: a hash without
--          one is PENDING, see status_of)
--
-- Appends a 'create' entry to the outbox (no body: the archive learns it
-- from the final entry), so live events are searchable in the archive.
--
-- Returns {1} when created, {0, {field, value, ...}} with the existing hash
-- when the identity is taken (the caller compares content for idempotent replay).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local now = now_ms(ARGV[5])
local due = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
zadd_wake(KEYS[2], due, ARGV[1], now, ARGV[6], ARGV[3], ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'u', 'm', 'c', 'u1')
redis.call('XADD', KEYS[3], '*', 'm', ARGV[1], 'k', 'create', 'c', f[3], 't', f[3], 's', 'PENDING',
  'u', long_join(KEYS[1], 'u', f[1], f[4]), 'me', f[2] or 'POST', 'd', due)
return {1}
