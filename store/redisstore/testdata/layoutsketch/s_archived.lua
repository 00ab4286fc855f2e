-- s_archived.lua: the compact layout, one string per event: a 40-byte state header (status, attempts, update time, worker), the request, the history; see layoutsketch_bench_test.go.
local ids, keys, sep = {}, {}, false
for i = 1, #ARGV do
  if ARGV[i] == '--' then sep = true elseif sep then keys[#keys + 1] = ARGV[i] else ids[#ids + 1] = ARGV[i] end
end
redis.call('XACK', '{b:1}:out', 'g', unpack(ids))
redis.call('XTRIM', '{b:1}:out', 'MINID', ids[#ids])
for _, k in ipairs(keys) do
  -- drop the body: the value without its body part, with the retention expiry, in one SET
  local v = redis.call('GET', k)
  local cut = string.find(v, '{"event"', 1, true)
  local rest = string.find(v, '\0', cut, true)
  redis.call('SET', k, string.sub(v, 1, cut - 1) .. string.sub(v, rest), 'PX', '86400000')
end
return #ids
