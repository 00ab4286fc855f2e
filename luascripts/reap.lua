-- reap.lua: recover events whose lease expired (their worker died, hung or
-- was paused). Each counts as a failed attempt ("lease expired"): it goes
-- back to `due` at now, or becomes SERVICE_UNAVAILABLE when no attempts remain.
--
-- KEYS[1] lease zset   <P>:lease
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] max events to recover in this call
-- ARGV[3] event key prefix        <P>:ev:
-- ARGV[4] default max attempts (when the event sets none)
-- ARGV[5] wake-up channel
-- ARGV[6] wake-up message
--
-- Returns the number of events recovered.
local now = now_ms(ARGV[1])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(members) do
  redis.call('ZREM', KEYS[1], m)
  local k = ARGV[3] .. m
  local ev = ev_load(k)
  local v = ev and ev.v
  if v and ev_status(v) == 'PROCESSING' then
    local attempts = v[I.attempts]
    local a = tonumber(attempts) or 0
    local line = '{"attempt":' .. a .. ',"at":' .. now .. ',"error":"lease expired","worker":' .. cjson.encode(v[I.worker] or '') .. '}'
    v[I.history] = (v[I.history] or '') .. line .. '\n'
    v[I.last_error], v[I.last_status_code], v[I.updated_at], v[I.worker] = 'lease expired', '', now, false
    if a >= (tonumber(ev_full(k, ev)[I.max_attempts]) or tonumber(ARGV[4])) then
      v[I.status], v[I.finished_at] = 'SERVICE_UNAVAILABLE', now
      ev_save(k, ev)
      xadd_final(KEYS[3], m, v[I.created_at], now, 'SERVICE_UNAVAILABLE', line,
        {'a', attempts, 'lc', '', 'le', 'lease expired'})
    else
      v[I.status], v[I.due_at] = 'PENDING', now
      ev_save(k, ev)
      redis.call('ZADD', KEYS[2], now, m)
      redis.call('XADD', KEYS[3], '*', 'm', m, 'k', 'attempt', 'c', v[I.created_at] or '', 't', now,
        's', 'PENDING', 'd', now, 'h', line)
    end
  end
end
if #members > 0 then publish_wake(ARGV[5], ARGV[6]) end
return #members
