-- ack.lua: record the final outcome of a delivery attempt
-- (COMPLETED, FAILED or SERVICE_UNAVAILABLE).
--
-- KEYS[1] event hash   <P>:ev:<app>/<id>
-- KEYS[2] lease zset   <P>:lease
-- KEYS[3] worker list  <P>:proc:<worker>
-- KEYS[4] outbox       <P>:out
-- ARGV[1] member
-- ARGV[2] worker id
-- ARGV[3] attempt number the worker claimed (the lease token with ARGV[2])
-- ARGV[4] final status
-- ARGV[5] last status code ('' when none)
-- ARGV[6] last error ('' when none)
-- ARGV[7] history line (JSON object of this attempt; the script adds
--         "stale":true when the caller no longer holds the lease)
-- ARGV[8] now, ms (0: use the Redis server clock)
--
-- Appends to the outbox a 'final' entry with the whole event, or, for a
-- stale attempt, an 'attempt' entry. The hash gets no expiry here and keeps
-- its body: once the outcome is safely archived the archiver sets the expiry
-- and drops a COMPLETED event's body (archived.lua).
--
-- Returns 1 when recorded, 0 when the caller no longer holds the lease (the
-- event was recovered and claimed again, cancelled or finished): the attempt
-- is then only appended to the history, the newer outcome stands. A call
-- applied before (the same history line: see finish_attempt) changes nothing
-- and returns what the first one did.
local now = now_ms(ARGV[8])
local held, dup, cur, line, hist, old_hist = finish_attempt(KEYS[1], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[7])
if dup then return held and 1 or 0 end
if not held then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[3], 1, ARGV[1])
local set, del = {F.status, ARGV[4], F.last_status_code, ARGV[5], F.updated_at, now, F.finished_at, now}, {}
put_long(set, del, F.history, hist, old_hist)
put_long(set, del, F.last_error, ARGV[6], long_join(KEYS[1], F.last_error, cur[8], cur[9]))
write_fields(KEYS[1], set, del)
xadd_final(KEYS[4], ARGV[1], KEYS[1], cur[4], now, ARGV[4], ARGV[7])
return 1
