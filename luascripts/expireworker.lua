-- expireworker.lua: end now the leases of the events a dead worker holds in
-- one shard, so the next reap recovers them instead of waiting for their
-- visibility timeout. Should the worker be alive after all, the lease check
-- refuses its outcome, as for any worker whose lease expired.
--
-- KEYS[1] lease zset                     <P>:lease
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] event key prefix               <P>:ev:
-- ARGV[3] worker id
--
-- Workers keep no list of the events they hold (claim.lua): the events
-- whose lease is running are looked at, one read each (only its worker
-- field is decoded). That is every worker's claims in flight in the shard,
-- bounded by the workers' concurrency, and only when a worker died.
--
-- Returns the number of leases ended.
local now = now_ms(ARGV[1])
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local k = ARGV[2] .. m
  local raw, w = ev_get(k), nil
  if raw == HASH then
    w = redis.call('HGET', k, F.worker)
  elseif raw then
    local _, st = compact_sections(k, raw)
    w = compact_pick(k, raw, st, #raw, I.worker, I.worker)
  end
  if w == ARGV[3] then
    redis.call('ZADD', KEYS[1], 'XX', now, m)
    n = n + 1
  end
end
return n
