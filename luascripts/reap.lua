-- reap.lua: recover events whose lease expired (their worker died, hung or
-- was paused). Each counts as a failed attempt ("lease expired"): it goes
-- back to `due` at now, or becomes SERVICE_UNAVAILABLE when no attempts remain.
--
-- KEYS[1] lease zset   <P>:lease
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] max events to recover in this call
-- ARGV[3] event hash key prefix   <P>:ev:
-- ARGV[4] worker list key prefix  <P>:proc:
-- ARGV[5] default max attempts (when the event sets none)
-- ARGV[6] wake-up channel
-- ARGV[7] wake-up message
--
-- Returns the number of events recovered.
local now = now_ms(ARGV[1])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(members) do
  redis.call('ZREM', KEYS[1], m)
  local k = ARGV[3] .. m
  local f = redis.call('HMGET', k, F.status, F.worker, F.attempts, F.max_attempts, F.created_at)
  if f[2] then redis.call('LREM', ARGV[4] .. f[2], 1, m) end
  if f[1] == 'PROCESSING' then
    local a = tonumber(f[3]) or 0
    local line = '{"attempt":' .. a .. ',"at":' .. now .. ',"error":"lease expired","worker":' .. cjson.encode(f[2] or '') .. '}'
    long_set(k, F.history, (long_get(k, F.history) or '') .. line .. '\n')
    long_set(k, F.last_error, 'lease expired')
    redis.call('HSET', k, F.last_status_code, '', F.updated_at, now)
    redis.call('HDEL', k, F.worker)
    if a >= (tonumber(f[4]) or tonumber(ARGV[5])) then
      redis.call('HSET', k, F.status, 'SERVICE_UNAVAILABLE', F.finished_at, now)
      xadd_final(KEYS[3], m, f[5], now, 'SERVICE_UNAVAILABLE', line,
        {'a', f[3], 'lc', '', 'le', 'lease expired'})
    else
      redis.call('HSET', k, F.status, 'PENDING', F.due_at, now)
      redis.call('ZADD', KEYS[2], now, m)
      redis.call('XADD', KEYS[3], '*', 'm', m, 'k', 'attempt', 'c', f[5] or '', 't', now,
        's', 'PENDING', 'd', now, 'h', line)
    end
  end
end
if #members > 0 then publish_wake(ARGV[6], ARGV[7]) end
return #members
