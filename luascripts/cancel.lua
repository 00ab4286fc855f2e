-- cancel.lua: cancel a PENDING event.
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member
-- ARGV[2] now, ms (0: use the Redis server clock)
--
-- Appends a 'final' entry to the outbox; the archiver sets the hash's
-- expiry once it is archived.
--
-- Returns {1, 'CANCELLED', the event as event_values gives it} when
-- cancelled (the caller answers with it, without reading it again),
-- {0, status} when the event is in another status, {-1, ''} when it does
-- not exist.
local s = status_of(KEYS[1])
if s == false then return {-1, ''} end
if s ~= 'PENDING' then return {0, s} end
local now = now_ms(ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], F.status, 'CANCELLED', F.updated_at, now, F.finished_at, now)
xadd_final(KEYS[3], ARGV[1], redis.call('HGET', KEYS[1], F.created_at), now, 'CANCELLED', '')
return append_event({1, 'CANCELLED'}, KEYS[1])
