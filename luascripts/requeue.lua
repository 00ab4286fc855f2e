-- requeue.lua: put a finished or pending event (back) to PENDING, due now.
-- Used by "retry" (FAILED, SERVICE_UNAVAILABLE, CANCELLED: attempts reset to 0)
-- and "run now" (PENDING: attempts kept).
--
-- KEYS[1] event        <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member
-- ARGV[2] now, ms (0: use the Redis server clock)
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message
-- ARGV[5] space-separated statuses allowed
-- ARGV[6] '1' to reset attempts to 0
--
-- Appends a 'requeue' entry to the outbox. The event loses any expiry: it is
-- live again.
--
-- Returns {1, 'PENDING', the event as append_event gives it} (the caller
-- answers with it, without reading it again), {0, status} when the status
-- is not allowed, {-1, ''} when the event does not exist. (COMPLETED, whose
-- body is dropped, is never allowed.)
local ev = ev_load(KEYS[1])
if not ev then return {-1, ''} end
local v = ev.v
local s = ev_status(v)
if not string.find(' ' .. ARGV[5] .. ' ', ' ' .. s .. ' ', 1, true) then return {0, s} end
local now = now_ms(ARGV[2])
v[I.status], v[I.due_at], v[I.updated_at], v[I.finished_at], v[I.worker] = 'PENDING', now, now, false, false
if ARGV[6] == '1' then v[I.attempts] = '0' end
ev_save(KEYS[1], ev)
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('XADD', KEYS[3], '*', 'm', ARGV[1], 'k', 'requeue', 'c', v[I.created_at] or '', 't', now,
  's', 'PENDING', 'd', now, 'a', v[I.attempts] or '0')
publish_wake(ARGV[3], ARGV[4])
return append_event({1, 'PENDING'}, KEYS[1], ev)
