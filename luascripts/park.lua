-- park.lua: hand a claimed event whose flow key held it back (flowacquire.lua)
-- back to PENDING without using an attempt, due at a later time.
--
-- KEYS[1] event            <P>:ev:<app>/<id>
-- KEYS[2] lease zset       <P>:lease
-- KEYS[3] due zset         <P>:due
-- ARGV[1] member
-- ARGV[2] worker id
-- ARGV[3] attempt number the worker claimed
-- ARGV[4] now, ms (0: use the Redis server clock)
-- ARGV[5] park until, ms: a safety net only. The key's queue (<FP>:q)
--         remembers the event and whoever grants it a permit makes it due
--         at once (unpark.lua); should that never happen (the granting
--         process died in between), the event comes back by itself then.
--
-- Like giveback.lua the claim did not start an attempt: attempts go back to
-- what they were, no history line, no outbox entry. Returns 1, or 0 when
-- the caller no longer holds the claim.
local now = now_ms(ARGV[4])
local k = KEYS[1]
local ev = ev_load(k)
local v = ev and ev.v
if not v or ev_status(v) ~= 'PROCESSING' or v[I.worker] ~= ARGV[2] or v[I.attempts] ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local a = tonumber(v[I.attempts]) or 0
if a > 0 then a = a - 1 end
v[I.status], v[I.attempts], v[I.updated_at], v[I.worker] = 'PENDING', a, now, false
ev_save(k, ev)
redis.call('ZADD', KEYS[3], tonumber(ARGV[5]), ARGV[1])
return 1
