-- retry.lua: a retryable attempt failed and attempts remain: back to PENDING,
-- due again after the backoff.
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] lease zset   <P>:lease
-- KEYS[3] worker list  <P>:proc:<worker>
-- KEYS[4] outbox       <P>:out
-- KEYS[5] due zset     <P>:due
-- ARGV[1] member
-- ARGV[2] worker id
-- ARGV[3] attempt number the worker claimed
-- ARGV[4] backoff, ms (next due = now + backoff)
-- ARGV[5] last status code ('' when none)
-- ARGV[6] last error
-- ARGV[7] history line (JSON object of this attempt; the script adds
--         "stale":true when the caller no longer holds the lease)
-- ARGV[8] now, ms (0: use the Redis server clock)
-- ARGV[9] wake-up channel
-- ARGV[10] wake-up message
-- ARGV[11] wake horizon, ms
--
-- Appends an 'attempt' entry to the outbox.
--
-- Returns the next due time in ms, or 0 when the caller no longer holds the
-- lease. A call applied before (the same history line: see finish_attempt)
-- changes nothing and returns 1 when the first one was recorded, else 0.
local now = now_ms(ARGV[8])
local held, dup, cur, line, hist, old_hist = finish_attempt(KEYS[1], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[7])
if dup then return held and 1 or 0 end
if not held then return 0 end
local due = now + tonumber(ARGV[4])
redis.call('XADD', KEYS[4], '*', 'm', ARGV[1], 'k', 'attempt', 'c', cur[4] or '', 't', now,
  's', 'PENDING', 'd', due, 'h', line)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[3], 1, ARGV[1])
local set, del = {F.status, 'PENDING', F.due_at, due, F.last_status_code, ARGV[5], F.updated_at, now}, {F.worker}
put_long(set, del, F.history, hist, old_hist)
put_long(set, del, F.last_error, ARGV[6], long_join(KEYS[1], F.last_error, cur[8], cur[9]))
write_fields(KEYS[1], set, del)
zadd_wake(KEYS[5], due, ARGV[1], now, ARGV[11], ARGV[9], ARGV[10])
return due
