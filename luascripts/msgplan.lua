-- msgplan.lua: record a claimed message's fan-out plan, once.
--
-- KEYS[1] event hash   <P>:ev:<app>/<id> (a message: kind 'message')
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
local cur = redis.call('HMGET', KEYS[1], F.status, F.worker, F.attempts)
if cur[1] ~= 'PROCESSING' or cur[2] ~= ARGV[1] or cur[3] ~= ARGV[2] then
  return {-1}
end
local old = long_get(KEYS[1], F.plan)
if old then return {0, old} end
long_set(KEYS[1], F.plan, ARGV[3])
redis.call('HSET', KEYS[1], F.updated_at, now_ms(ARGV[4]))
return {1, ARGV[3]}
