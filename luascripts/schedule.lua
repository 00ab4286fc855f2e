-- schedule.lua: create an event unless its identity already exists.
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- ARGV[1] member       <app>/<id>
-- ARGV[2] due time, ms
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message (the shard number)
-- ARGV[5] now, ms (0: use the Redis server clock)
-- ARGV[6] wake horizon, ms: publish only when the event is due within it
-- ARGV[7..] field, value pairs of the event hash
--
-- Returns {1} when created, {0, {field, value, ...}} with the existing hash
-- when the identity is taken (the caller compares content for idempotent replay).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local now = tonumber(ARGV[5])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local due = tonumber(ARGV[2])
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('ZADD', KEYS[2], due, ARGV[1])
-- Wake sleeping workers only when this event moves the shard's earliest due
-- time forward and is due before they would poll again anyway.
if (first[2] == nil or due < tonumber(first[2])) and due - now < tonumber(ARGV[6]) then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return {1}
