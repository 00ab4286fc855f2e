-- finish.lua (BenchmarkLayoutSketch): record a batch of successful
-- deliveries. ARGV: layout ('hash' or 'string'), first event number, count.
-- hash: HMGET of the fields finish_attempt reads, HSET of the outcome and
-- the chunked history line, as finishmany.lua; string: GETRANGE of the state
-- header, SETRANGE of it and APPEND of the history line. Both append the
-- 'final' outbox entry.
local hash, base, n = ARGV[1] == 'hash', tonumber(ARGV[2]), tonumber(ARGV[3])
local line = '{"attempt":1,"at":1765000000050,"status_code":200,"duration_ms":3,"worker":"worker-7f3a9c","response":"{\\"ok\\":true}","size":11}'
local ended = {}
for i = base, base + n - 1 do
  local m = 'bench/e-' .. i
  local k = '{b:1}:ev:' .. m
  local held, attempts
  if hash then
    local cur = redis.call('HMGET', k, 's', 'w', 'a', 'c', 't', 'hi', 'hi1', 'le', 'le1', 'd')
    held, attempts = cur[1] == 'PROCESSING' and cur[2] == 'worker-7f3a9c', cur[3]
    if held then
      local h = line .. '\n'
      redis.call('HSET', k, 's', 'COMPLETED', 'lc', '200', 't', '1765000000055', 'f', '1765000000055',
        'hi', string.sub(h, 1, 64), 'hi1', string.sub(h, 65, 128), 'hi2', string.sub(h, 129))
    end
  else
    local cur = redis.call('GETRANGE', k, 0, 39)
    held, attempts = string.sub(cur, 1, 1) == 'R' and string.sub(cur, 18, 30) == 'worker-7f3a9c', string.sub(cur, 2, 4)
    if held then
      redis.call('SETRANGE', k, 0, 'C' .. attempts .. '1765000000055' .. string.sub(cur, 18))
      redis.call('APPEND', k, '\0' .. line)
    end
  end
  if held then
    ended[#ended + 1] = m
    redis.call('XADD', '{b:1}:out', '*', 'm', m, 'k', 'final', 'c', '1764999990000', 't', '1765000000055',
      's', 'COMPLETED', 'h', line, 'a', attempts, 'lc', '200', 'le', '', 'd', '1765000000000')
  end
end
if #ended > 0 then redis.call('ZREM', '{b:1}:lease', unpack(ended)) end
return #ended
