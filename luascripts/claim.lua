-- claim.lua: claim up to a batch of due events of one shard for one worker.
--
-- KEYS[1] due zset      <P>:due
-- KEYS[2] lease zset    <P>:lease
-- KEYS[3] worker list   <P>:proc:<worker>
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] batch size
-- ARGV[3] visibility timeout, ms
-- ARGV[4] worker id
-- ARGV[5] event hash key prefix <P>:ev: (same hash tag as KEYS)
--
-- Each claimed member leaves `due`, joins the worker's list and `lease`
-- (score = now + visibility), becomes PROCESSING with attempts + 1.
-- Returns {now, next_due, n, then n times: member, the claimed event}, the
-- event as event_values gives it (prelude.lua: FIELDS in order, long values
-- joined, nil where absent), so it decodes as Get would read it, and
-- next_due is the earliest remaining due time (-1 when none), so the
-- worker can sleep until exactly then on the server's clock.
local now = now_ms(ARGV[1])
local deadline = now + tonumber(ARGV[3])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local res = {now, -1, 0}
local n = 0
for _, m in ipairs(members) do
  redis.call('ZREM', KEYS[1], m)
  local k = ARGV[5] .. m
  if redis.call('EXISTS', k) == 1 then
    redis.call('HINCRBY', k, F.attempts, 1)
    redis.call('HSET', k, F.status, 'PROCESSING', F.worker, ARGV[4], F.updated_at, now)
    redis.call('ZADD', KEYS[2], deadline, m)
    redis.call('RPUSH', KEYS[3], m)
    res[#res + 1] = m
    append_event(res, k)
    n = n + 1
  end
end
res[3] = n
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then res[2] = tonumber(first[2]) end
return res
