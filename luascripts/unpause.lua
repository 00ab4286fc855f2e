-- unpause.lua: end a pause in one shard (API.md §9, claim.lua): drop the
-- pause table's field and move events parked under it back to due, at
-- their own due scores, so they are claimed in due order.
--
-- KEYS[1] the shard's pause table  <P>:paused
-- KEYS[2] due zset                 <P>:due
-- KEYS[3] the parked events        <P>:park:<field>
-- ARGV[1] the field: 'a:<app>' or 'f:<app>/<flow key>'
-- ARGV[2] most events moved in this call
-- ARGV[3] event key prefix         <P>:ev:
-- ARGV[4] wake-up channel
-- ARGV[5] wake-up message
--
-- An event cancelled meanwhile (no longer PENDING) is dropped. Returns the
-- number of events still parked: call again until 0.
redis.call('HDEL', KEYS[1], ARGV[1])
local batch = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for i = 1, #batch, 2 do
  local m = batch[i]
  redis.call('ZREM', KEYS[3], m)
  if status_of(ARGV[3] .. m) == 'PENDING' then
    redis.call('ZADD', KEYS[2], 'NX', batch[i + 1], m)
  end
end
if #batch > 0 then publish_wake(ARGV[4], ARGV[5]) end
return redis.call('ZCARD', KEYS[3])
