-- flowacquire.lua: ask a flow key for a permit to deliver one claimed event
-- now (API.md §9, store/redisstore/flows.go).
--
-- KEYS[1] the flow's limits   <FP>       hash: r (requests/s), p (parallelism), tat
-- KEYS[2] its permits         <FP>:run   zset: member -> permit deadline ms
-- KEYS[3] its held events     <FP>:q     zset: member -> due ms
-- ARGV[1] member <app>/<id>
-- ARGV[2] the event's due score, ms (its place in the key's queue)
-- ARGV[3] now, ms (0: use the Redis server clock)
-- ARGV[4] permit lifetime, ms (the worker's visibility timeout): a permit
--         not released nor extended by then is taken back, so a worker that
--         died holding it does not leak it
--
-- A key without a rate and without a parallelism (unknown, or paused only:
-- claim.lua parks paused keys' events) has no limit: {0, 0}, no permit.
-- Otherwise the event gets a permit ({1, 0}) when it holds one already (the
-- pump granted it while it was held, or a repeated claim), or when no older
-- event of the key is held, fewer than p permits are out, and the rate
-- allows a start now: starts are spread 1000 / r ms apart (a generic cell
-- rate algorithm without burst: tat is the earliest next start), so no
-- one-second window sees more than r. Else the event joins the held queue at
-- its due score: {2, wake}, wake being when a permit may come (the next
-- rate slot, or the earliest permit deadline), 0 when only a release can
-- tell.
local now = now_ms(ARGV[3])
local member, due = ARGV[1], tonumber(ARGV[2])
local cfg = redis.call('HMGET', KEYS[1], 'r', 'p', 'tat')
local rate, par = tonumber(cfg[1]), tonumber(cfg[2])
if not rate and not par then return {0, 0} end
local deadline = now + tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[2], member) then
  redis.call('ZADD', KEYS[2], deadline, member)
  redis.call('ZREM', KEYS[3], member)
  return {1, 0}
end
local tat = tonumber(cfg[3]) or 0
local wake = 0
local ok = true
local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if head[1] and head[1] ~= member and tonumber(head[2]) <= due then ok = false end
if ok and par and redis.call('ZCARD', KEYS[2]) >= par then
  ok = false
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then wake = tonumber(first[2]) end
end
if ok and rate and tat > now then
  ok = false
  wake = math.floor(tat)
end
if not ok then
  redis.call('ZADD', KEYS[3], due, member)
  return {2, wake}
end
if rate then redis.call('HSET', KEYS[1], 'tat', tostring(math.max(tat, now) + 1000 / rate)) end
redis.call('ZADD', KEYS[2], deadline, member)
redis.call('ZREM', KEYS[3], member)
return {1, 0}
