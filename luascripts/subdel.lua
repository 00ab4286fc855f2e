-- subdel.lua: delete a subscription (scheduler/topic) and bump its
-- application's subscription revision, at once. Both keys carry the hash tag
-- {<ns>:sub:<app>}, so the script runs in one Redis Cluster slot.
--
-- KEYS[1] subscriptions hash   <ns>:{<ns>:sub:<app>}:subs   field id -> JSON
-- KEYS[2] revision counter     <ns>:{<ns>:sub:<app>}:rev
-- ARGV[1] subscription id
--
-- Returns the new revision, or 0 when there was no such subscription
-- (nothing changed, the revision stays).
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
return redis.call('INCR', KEYS[2])
