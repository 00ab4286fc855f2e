-- create.lua (BenchmarkLayoutSketch): create a batch of events and their
-- outbox 'create' entries. ARGV: layout ('hash' or 'string'), first event
-- number, count. hash: EXISTS + HSET of the chunked fields, as
-- schedulemany.lua; string: SET NX of a 40-byte state header (status,
-- attempts, update time, worker) followed by the request.
local hash, base, n = ARGV[1] == 'hash', tonumber(ARGV[2]), tonumber(ARGV[3])
local url = 'http://127.0.0.1:45261/sink?customer=c-123456&order=o-12345678&lang=en'
local body = '{"event":"paid","customer":"c-123456","order":"o-12345678","cents":4242,"items":3,"note":"xxxxxxxx"}'
local value = 'P000' .. '1764999990000' .. string.rep(' ', 23) ..
  '1764999990000' .. '1765000000000' .. '\0' .. url .. '\0' .. 'Content-Type:application/json' .. '\0' .. body
local z = {}
for i = base, base + n - 1 do
  local m = 'bench/e-' .. i
  local k = '{b:1}:ev:' .. m
  local created
  if hash then
    created = redis.call('EXISTS', k) == 0
    if created then
      redis.call('HSET', k, 'u', string.sub(url, 1, 64), 'u1', string.sub(url, 65), 'd', '1765000000000',
        'c', '1764999990000', 'h', 'Content-Type:application/json', 'b', string.sub(body, 1, 64),
        'b1', string.sub(body, 65))
    end
  else
    created = redis.call('SET', k, value, 'NX') ~= false
  end
  if created then
    redis.call('XADD', '{b:1}:out', '*', 'm', m, 'k', 'create', 'c', '1764999990000', 'u', url, 'd', '1765000000000')
    z[#z + 1] = '1765000000000'
    z[#z + 1] = m
  end
end
if #z > 0 then redis.call('ZADD', '{b:1}:due', unpack(z)) end
return 1
