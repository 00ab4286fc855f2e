-- h_archived.lua: the event hash (what the product uses); see layoutsketch_bench_test.go.
-- ARGV: ids..., then '--', then finals' keys
local ids, keys, sep = {}, {}, false
for i = 1, #ARGV do
  if ARGV[i] == '--' then sep = true elseif sep then keys[#keys + 1] = ARGV[i] else ids[#ids + 1] = ARGV[i] end
end
redis.call('XACK', '{b:1}:out', 'g', unpack(ids))
redis.call('XTRIM', '{b:1}:out', 'MINID', ids[#ids])
for _, k in ipairs(keys) do
  redis.call('PEXPIRE', k, '86400000')
  redis.call('HDEL', k, 'b', 'b1')
end
return #ids
