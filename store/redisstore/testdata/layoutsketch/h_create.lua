-- current layout: create a batch of events (hash + create entry + due zset)
local base, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local z = {}
for i = base, base + n - 1 do
  local m = 'bench/e-' .. i
  local k = '{b:1}:ev:' .. m
  if redis.call('EXISTS', k) == 0 then
    redis.call('HSET', k, 'u', 'http://127.0.0.1:45261/sink?customer=c-123456&order=o-12345678&l', 'u1', 'ang=en',
      'd', '1765000000000', 'c', '1764999990000', 'h', 'Content-Type:application/json',
      'b', '{"event":"paid","customer":"c-123456","order":"o-12345678","cent', 'b1', 's":4242,"items":3,"note":"xxxxxxxx"}')
    redis.call('XADD', '{b:1}:out', '*', 'm', m, 'k', 'create', 'c', '1764999990000',
      'u', 'http://127.0.0.1:45261/sink?customer=c-123456&order=o-12345678&lang=en', 'd', '1765000000000')
    z[#z + 1] = '1765000000000'
    z[#z + 1] = m
  end
end
redis.call('ZADD', '{b:1}:due', unpack(z))
return 1
