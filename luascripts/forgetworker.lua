-- forgetworker.lua: remove a dead worker from the workers zset, unless it
-- beat again meanwhile (it was only slow, and keeps its entry).
--
-- KEYS[1] workers zset   <ns>:workers
-- ARGV[1] worker id
-- ARGV[2] now, ms (0: use the Redis server clock)
-- ARGV[3] dead after, ms
--
-- Returns 1 when the worker was removed, 0 when it is alive or unknown.
local now = now_ms(ARGV[2])
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not beat or tonumber(beat) >= now - tonumber(ARGV[3]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
