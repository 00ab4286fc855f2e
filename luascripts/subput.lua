-- subput.lua: store a subscription (scheduler/topic) and bump its
-- application's subscription revision, at once. Both keys carry the hash tag
-- {<ns>:sub:<app>}, so the script runs in one Redis Cluster slot.
--
-- KEYS[1] subscriptions hash   <ns>:{<ns>:sub:<app>}:subs   field id -> JSON
-- KEYS[2] revision counter     <ns>:{<ns>:sub:<app>}:rev
-- ARGV[1] subscription id
-- ARGV[2] the subscription, JSON beginning with {"created":<ms>, (the Go
--         record's first field, so a replace can keep the old value)
-- ARGV[3] 1 to replace an existing subscription, 0 to create only
-- ARGV[4] the most subscriptions an application may have
--
-- Returns one of:
--   {1, <new revision>}                    created
--   {1, <new revision>, <replaced JSON>}   replaced; the new record keeps the
--                                          replaced one's created ms
--   {0, <existing JSON>}                   create only and the id is taken:
--                                          nothing written
--   {-1, <count>}                          a new id and the application is at
--                                          the cap: nothing written
local old = redis.call('HGET', KEYS[1], ARGV[1])
local rec = ARGV[2]
if old then
  if ARGV[3] ~= '1' then
    return {0, old}
  end
  local created = string.match(old, '^{"created":(%-?%d+)')
  local rest = string.match(rec, '^{"created":%-?%d+(.*)$')
  if created and rest then
    rec = '{"created":' .. created .. rest
  end
else
  local n = redis.call('HLEN', KEYS[1])
  if n >= tonumber(ARGV[4]) then
    return {-1, n}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], rec)
local rev = redis.call('INCR', KEYS[2])
if old then
  return {1, rev, old}
end
return {1, rev}
