-- requeue.lua: put a finished or pending event (back) to PENDING, due now.
-- Used by "retry" (FAILED, SERVICE_UNAVAILABLE, CANCELLED: attempts reset to 0)
-- and "run now" (PENDING: attempts kept).
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member
-- ARGV[2] now, ms (0: use the Redis server clock)
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message
-- ARGV[5] space-separated statuses allowed
-- ARGV[6] '1' to reset attempts to 0
--
-- Appends a 'requeue' entry to the outbox. The hash loses any expiry: it is
-- live again.
--
-- Returns {1, 'PENDING', the event as event_values gives it} (the caller
-- answers with it, without reading it again), {0, status} when the status
-- is not allowed, {-1, ''} when the event does not exist. (COMPLETED, whose
-- body is dropped, is never allowed.)
local s = status_of(KEYS[1])
if s == false then return {-1, ''} end
if not string.find(' ' .. ARGV[5] .. ' ', ' ' .. s .. ' ', 1, true) then return {0, s} end
local now = now_ms(ARGV[2])
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], F.status, 'PENDING', F.due_at, now, F.updated_at, now)
redis.call('HDEL', KEYS[1], F.finished_at, F.worker)
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], F.attempts, 0) end
redis.call('ZADD', KEYS[2], now, ARGV[1])
local ev, at = event_values(KEYS[1])
redis.call('XADD', KEYS[3], '*', 'm', ARGV[1], 'k', 'requeue', 'c', ev[at[F.created_at]] or '', 't', now,
  's', 'PENDING', 'd', now, 'a', ev[at[F.attempts]] or '0')
publish_wake(ARGV[3], ARGV[4])
local res = {1, 'PENDING'}
for _, v in ipairs(ev) do res[#res + 1] = v end
return res
