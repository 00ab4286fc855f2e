-- prelude.lua: helpers prepended to every script (scripts.go joins them), so
-- each script stays one self-contained EVAL body.

-- now_ms returns the time in ms: the caller's (tests inject a clock) or,
-- when the caller passes 0, the Redis server's, so workers with skewed
-- clocks agree on what is due.
local function now_ms(arg)
  local now = tonumber(arg)
  if now == nil or now == 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- xadd_final appends a 'final' outbox entry for event hash k: the hash as
-- JSON without the body (binary-safe as its own raw field 'b') and without
-- the history (the archive gets every attempt from its own entry).
local function xadd_final(stream, member, k, created, now, status, line)
  local all = redis.call('HGETALL', k)
  local ev, body = {}, nil
  for i = 1, #all, 2 do
    if all[i] == 'b' then body = all[i + 1]
    elseif all[i] ~= 'hi' then ev[#ev + 1] = all[i]; ev[#ev + 1] = all[i + 1] end
  end
  local args = {stream, '*', 'm', member, 'k', 'final', 'c', created or '', 't', now, 's', status,
    'h', line or '', 'ev', cjson.encode(ev)}
  if body then args[#args + 1] = 'b'; args[#args + 1] = body end
  redis.call('XADD', unpack(args))
end

-- finish_attempt checks the caller's lease on event hash k (worker and
-- attempt number must match a PROCESSING event) and appends the attempt's
-- history line. A late attempt joins the history marked stale
-- (scheduler.Attempt.Stale): it was delivered, but its outcome does not
-- count; it goes to the outbox as an 'attempt' entry leaving the run as it
-- is. Returns held (nil when the event is gone), the hash's s, w, a, c, t,
-- and the line as recorded.
local function finish_attempt(k, stream, member, worker, attempt, line)
  local cur = redis.call('HMGET', k, 's', 'w', 'a', 'c', 't')
  if cur[1] == false then return nil, cur, line end
  local held = cur[1] == 'PROCESSING' and cur[2] == worker and cur[3] == attempt
  if not held then
    if line == '{}' then line = '{"stale":true}'
    elseif string.sub(line, -1) == '}' then line = string.sub(line, 1, -2) .. ',"stale":true}' end
  end
  redis.call('HSET', k, 'hi', (redis.call('HGET', k, 'hi') or '') .. line .. '\n')
  if not held then
    redis.call('XADD', stream, '*', 'm', member, 'k', 'attempt', 'c', cur[4] or '', 't', cur[5] or '',
      's', cur[1], 'h', line)
  end
  return held, cur, line
end

-- zadd_wake adds member to due set key at due and, when that moves the set's
-- earliest due time forward and within the horizon (ms from now), publishes
-- a wake-up so sleeping workers re-plan.
local function zadd_wake(key, due, member, now, horizon, channel, msg)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  redis.call('ZADD', key, due, member)
  if (first[2] == nil or due < tonumber(first[2])) and due - now < tonumber(horizon) then
    redis.call('PUBLISH', channel, msg)
  end
end

