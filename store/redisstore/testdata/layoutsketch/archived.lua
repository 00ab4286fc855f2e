-- archived.lua (BenchmarkLayoutSketch): a batch of outbox entries was
-- archived. ARGV: layout ('hash' or 'string'), the entry ids, '--', the
-- keys of the finished events. Acknowledges and trims the entries, then
-- starts each finished event's retention and drops its body. hash: PEXPIRE
-- and HDEL of the body's chunks, as archived.lua; string: one SET PX of the
-- value without its body.
local hash = ARGV[1] == 'hash'
local ids, keys, sep = {}, {}, false
for i = 2, #ARGV do
  if ARGV[i] == '--' then sep = true elseif sep then keys[#keys + 1] = ARGV[i] else ids[#ids + 1] = ARGV[i] end
end
redis.call('XACK', '{b:1}:out', 'g', unpack(ids))
redis.call('XTRIM', '{b:1}:out', 'MINID', ids[#ids])
for _, k in ipairs(keys) do
  if hash then
    redis.call('PEXPIRE', k, '86400000')
    redis.call('HDEL', k, 'b', 'b1')
  else
    local v = redis.call('GET', k)
    local cut = string.find(v, '{"event"', 1, true)
    local rest = string.find(v, '\0', cut, true)
    redis.call('SET', k, string.sub(v, 1, cut - 1) .. string.sub(v, rest), 'PX', '86400000')
  end
end
return #ids
