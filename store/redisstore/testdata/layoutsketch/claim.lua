-- claim.lua (BenchmarkLayoutSketch): claim up to a batch of due events.
-- ARGV: layout ('hash' or 'string'), batch size. hash: HGETALL, then HSET
-- of attempts, status, worker and update time, as claim.lua; string: GET,
-- then SETRANGE of the state header. Both hand the event back.
local hash, n = ARGV[1] == 'hash', tonumber(ARGV[2])
local members = redis.call('ZRANGEBYSCORE', '{b:1}:due', '-inf', '1765000000001', 'WITHSCORES', 'LIMIT', 0, n)
if #members == 0 then return {} end
local res, gone, leased = {}, {}, {}
for i = 1, #members, 2 do
  local m = members[i]
  gone[#gone + 1] = m
  local k = '{b:1}:ev:' .. m
  local a, ev
  if hash then
    ev = redis.call('HGETALL', k)
    a = 0
    for j = 1, #ev, 2 do
      if ev[j] == 'a' then a = tonumber(ev[j + 1]) or 0 end
    end
    a = a + 1
    redis.call('HSET', k, 'a', tostring(a), 's', 'PROCESSING', 'w', 'worker-7f3a9c', 't', '1765000000005')
  else
    ev = redis.call('GET', k)
    a = tonumber(string.sub(ev, 2, 4)) + 1
    redis.call('SETRANGE', k, 0, 'R' .. string.format('%03d', a) .. '1765000000005' .. 'worker-7f3a9c          ')
  end
  leased[#leased + 1] = '1765000030005'
  leased[#leased + 1] = m
  res[#res + 1] = m
  res[#res + 1] = a
  res[#res + 1] = ev
end
redis.call('ZREM', '{b:1}:due', unpack(gone))
redis.call('ZADD', '{b:1}:lease', unpack(leased))
return res
