-- h_finish.lua: the event hash (what the product uses); see layoutsketch_bench_test.go.
local base, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local line = '{"attempt":1,"at":1765000000050,"status_code":200,"duration_ms":3,"worker":"worker-7f3a9c","response":"{\\"ok\\":true}","size":11}'
local ended, res = {}, {}
for i = base, base + n - 1 do
  local m = 'bench/e-' .. i
  local k = '{b:1}:ev:' .. m
  local cur = redis.call('HMGET', k, 's', 'w', 'a', 'c', 't', 'hi', 'hi1', 'le', 'le1', 'd')
  if cur[1] == 'PROCESSING' and cur[2] == 'worker-7f3a9c' then
    ended[#ended + 1] = m
    local h = line .. '\n'
    redis.call('HSET', k, 's', 'COMPLETED', 'lc', '200', 't', '1765000000055', 'f', '1765000000055',
      'hi', string.sub(h, 1, 64), 'hi1', string.sub(h, 65, 128), 'hi2', string.sub(h, 129))
    redis.call('XADD', '{b:1}:out', '*', 'm', m, 'k', 'final', 'c', cur[4], 't', '1765000000055', 's', 'COMPLETED',
      'h', line, 'a', cur[3], 'lc', '200', 'le', '', 'd', cur[10])
    res[#res + 1] = 1
  end
end
redis.call('ZREM', '{b:1}:lease', unpack(ended))
return res
