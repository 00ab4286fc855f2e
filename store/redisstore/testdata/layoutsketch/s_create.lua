-- compact layout: one string per event: a 40-byte state header, then the request
local base, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local z = {}
local hdr = 'P000' .. '1764999990000' .. string.rep(' ', 23)
local req = '1764999990000' .. '1765000000000' .. '\0' .. 'http://127.0.0.1:45261/sink?customer=c-123456&order=o-12345678&lang=en' ..
  '\0' .. 'Content-Type:application/json' .. '\0' .. '{"event":"paid","customer":"c-123456","order":"o-12345678","cents":4242,"items":3,"note":"xxxxxxxx"}'
for i = base, base + n - 1 do
  local m = 'bench/e-' .. i
  local k = '{b:1}:ev:' .. m
  if redis.call('SET', k, hdr .. req, 'NX') then
    redis.call('XADD', '{b:1}:out', '*', 'm', m, 'k', 'create', 'c', '1764999990000',
      'u', 'http://127.0.0.1:45261/sink?customer=c-123456&order=o-12345678&lang=en', 'd', '1765000000000')
    z[#z + 1] = '1765000000000'
    z[#z + 1] = m
  end
end
redis.call('ZADD', '{b:1}:due', unpack(z))
return 1
