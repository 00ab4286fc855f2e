-- cancel.lua: cancel a PENDING event.
--
-- KEYS[1] event        <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member
-- ARGV[2] now, ms (0: use the Redis server clock)
--
-- Appends a 'final' entry to the outbox; the archiver sets the event's
-- expiry once it is archived.
--
-- Returns {1, 'CANCELLED', the event as append_event gives it} when
-- cancelled (the caller answers with it, without reading it again),
-- {0, status} when the event is in another status, {-1, ''} when it does
-- not exist.
local ev = ev_load(KEYS[1])
if not ev then return {-1, ''} end
local v = ev.v
local s = ev_status(v)
if s ~= 'PENDING' then return {0, s} end
local now = now_ms(ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
v[I.status], v[I.updated_at], v[I.finished_at] = 'CANCELLED', now, now
ev_save(KEYS[1], ev)
xadd_final(KEYS[3], ARGV[1], v[I.created_at], now, 'CANCELLED', '')
return append_event({1, 'CANCELLED'}, KEYS[1], ev)
