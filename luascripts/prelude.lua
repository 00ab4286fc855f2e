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

