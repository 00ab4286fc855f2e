-- msgplan.lua: record a claimed message's fan-out plan, once.
--
-- KEYS[1] event        <P>:ev:<app>/<id> (a message: kind 'message')
-- ARGV[1] worker id
-- ARGV[2] attempt number the worker claimed
-- ARGV[3] the plan (JSON, scheduler/topic)
-- ARGV[4] now, ms (0: use the Redis server clock)
--
-- A plan, once recorded, is never replaced: a fan-out repeated after a
-- crash (the lease expired, another worker claimed the message) reuses it,
-- so it creates exactly the deliveries of the first one, whatever the
-- subscriptions have become since.
--
-- Returns {1, plan} when the caller's plan was recorded, {0, plan} when one
-- was recorded before (the plan to follow), {-1} when the caller does not
-- hold the lease (it must not fan out).
local ev = ev_load(KEYS[1])
local v = ev and ev.v
if not v or ev_status(v) ~= 'PROCESSING' or v[I.worker] ~= ARGV[1] or v[I.attempts] ~= ARGV[2] then
  return {-1}
end
if v[I.plan] then return {0, v[I.plan]} end
v[I.plan], v[I.updated_at] = ARGV[3], now_ms(ARGV[4])
ev_save(KEYS[1], ev)
return {1, ARGV[3]}
