-- h_claim.lua: the event hash (what the product uses); see layoutsketch_bench_test.go.
local n = tonumber(ARGV[1])
local members = redis.call('ZRANGEBYSCORE', '{b:1}:due', '-inf', '1765000000001', 'WITHSCORES', 'LIMIT', 0, n)
if #members == 0 then return {} end
local res, gone, leased, pushed = {}, {}, {}, {}
for i = 1, #members, 2 do
  local m = members[i]
  gone[#gone + 1] = m
  local k = '{b:1}:ev:' .. m
  local all = redis.call('HGETALL', k)
  local a, fk = 0, nil
  for j = 1, #all, 2 do
    local f = all[j]
    if f == 'a' then a = tonumber(all[j + 1]) or 0 elseif f == 'fk' then fk = all[j + 1] end
  end
  a = a + 1
  redis.call('HSET', k, 'a', tostring(a), 's', 'PROCESSING', 'w', 'worker-7f3a9c', 't', '1765000000005')
  leased[#leased + 1] = '1765000030005'
  leased[#leased + 1] = m
  pushed[#pushed + 1] = m
  res[#res + 1] = m
  res[#res + 1] = a
  res[#res + 1] = all
end
redis.call('ZREM', '{b:1}:due', unpack(gone))
redis.call('ZADD', '{b:1}:lease', unpack(leased))
return res
