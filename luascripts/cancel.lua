-- cancel.lua: cancel a PENDING event.
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member
-- ARGV[2] now, ms (0: use the Redis server clock)
-- ARGV[3] retention, ms
--
-- Returns {1, 'CANCELLED'} when cancelled, {0, status} when the event is in
-- another status, {-1, ''} when it does not exist.
local s = redis.call('HGET', KEYS[1], 's')
if s == false then return {-1, ''} end
if s ~= 'PENDING' then return {0, s} end
local now = tonumber(ARGV[2])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 's', 'CANCELLED', 't', now, 'f', now)
redis.call('XADD', KEYS[3], '*', 'm', ARGV[1], 'k', 'final', 'h', '',
  'ev', cjson.encode(redis.call('HGETALL', KEYS[1])))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, 'CANCELLED'}
