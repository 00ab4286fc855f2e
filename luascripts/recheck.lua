-- recheck.lua: hand a claimed message back to `due`, to look at again at a
-- given time, without counting an attempt. A message whose deliveries are
-- under way is not finished: its worker follows it by rechecking it (the
-- lease machinery then guarantees one worker at a time looks at it, and a
-- worker that dies mid-way loses nothing).
--
-- KEYS[1] event                 <P>:ev:<app>/<id>
-- KEYS[2] lease zset            <P>:lease
-- KEYS[3] due zset              <P>:due
-- ARGV[1] member
-- ARGV[2] worker id
-- ARGV[3] attempt number the worker claimed
-- ARGV[4] when to look again, ms
-- ARGV[5] now, ms (0: use the Redis server clock)
-- ARGV[6] wake-up channel
-- ARGV[7] wake-up message (the shard number)
-- ARGV[8] wake horizon, ms
--
-- The hash keeps its due time (the message's); only its place in `due`
-- says when to look again. The claim's attempt is taken back (attempts as before the claim), no
-- history line and no outbox entry: following a message is not delivering
-- it. Returns 1, or 0 when the caller no longer holds the lease.
local now = now_ms(ARGV[5])
local ev = ev_load(KEYS[1])
local v = ev and ev.v
if not v or ev_status(v) ~= 'PROCESSING' or v[I.worker] ~= ARGV[2] or v[I.attempts] ~= ARGV[3] then
  return 0
end
local a = tonumber(v[I.attempts]) or 0
if a > 0 then a = a - 1 end
local due = tonumber(ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
v[I.status], v[I.attempts], v[I.updated_at], v[I.worker] = 'PENDING', a, now, false
ev_save(KEYS[1], ev)
zadd_wake(KEYS[3], due, ARGV[1], now, ARGV[8], ARGV[6], ARGV[7])
return 1
