-- s_finish.lua: the compact layout, one string per event: a 40-byte state header (status, attempts, update time, worker), the request, the history; see layoutsketch_bench_test.go.
local base, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local line = '{"attempt":1,"at":1765000000050,"status_code":200,"duration_ms":3,"worker":"worker-7f3a9c","response":"{\\"ok\\":true}","size":11}'
local ended, res = {}, {}
for i = base, base + n - 1 do
  local m = 'bench/e-' .. i
  local k = '{b:1}:ev:' .. m
  local cur = redis.call('GETRANGE', k, 0, 39)
  if string.sub(cur, 1, 1) == 'R' and string.sub(cur, 18, 30) == 'worker-7f3a9c' then
    ended[#ended + 1] = m
    redis.call('SETRANGE', k, 0, 'C' .. string.sub(cur, 2, 4) .. '1765000000055' .. string.sub(cur, 18))
    redis.call('APPEND', k, '\0' .. line)
    redis.call('XADD', '{b:1}:out', '*', 'm', m, 'k', 'final', 'c', '1764999990000', 't', '1765000000055', 's', 'COMPLETED',
      'h', line, 'a', string.sub(cur, 2, 4), 'lc', '200', 'le', '', 'd', '1765000000000')
    res[#res + 1] = 1
  end
end
redis.call('ZREM', '{b:1}:lease', unpack(ended))
return res
