-- s_claim.lua: the compact layout, one string per event: a 40-byte state header (status, attempts, update time, worker), the request, the history; see layoutsketch_bench_test.go.
local n = tonumber(ARGV[1])
local members = redis.call('ZRANGEBYSCORE', '{b:1}:due', '-inf', '1765000000001', 'WITHSCORES', 'LIMIT', 0, n)
if #members == 0 then return {} end
local res, gone, leased, pushed = {}, {}, {}, {}
for i = 1, #members, 2 do
  local m = members[i]
  gone[#gone + 1] = m
  local k = '{b:1}:ev:' .. m
  local v = redis.call('GET', k)
  local a = tonumber(string.sub(v, 2, 4)) + 1
  redis.call('SETRANGE', k, 0, 'R' .. string.format('%03d', a) .. '1765000000005' .. 'worker-7f3a9c          ')
  leased[#leased + 1] = '1765000030005'
  leased[#leased + 1] = m
  pushed[#pushed + 1] = m
  res[#res + 1] = m
  res[#res + 1] = a
  res[#res + 1] = v
end
redis.call('ZREM', '{b:1}:due', unpack(gone))
redis.call('ZADD', '{b:1}:lease', unpack(leased))
return res
