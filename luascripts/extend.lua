-- extend.lua: push the lease of an event still being delivered further out.
--
-- KEYS[1] event        <P>:ev:<app>/<id>
-- KEYS[2] lease zset   <P>:lease
-- ARGV[1] member
-- ARGV[2] worker id
-- ARGV[3] attempt number the worker claimed
-- ARGV[4] now, ms (0: use the Redis server clock)
-- ARGV[5] visibility timeout, ms
--
-- Returns the new lease deadline in ms, or 0 when the caller lost the lease.
local now = now_ms(ARGV[4])
local ev = ev_load(KEYS[1])
local v = ev and ev.v
if not v or ev_status(v) ~= 'PROCESSING' or v[I.worker] ~= ARGV[2] or v[I.attempts] ~= ARGV[3] then
  return 0
end
local deadline = now + tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], 'XX', deadline, ARGV[1])
return deadline
