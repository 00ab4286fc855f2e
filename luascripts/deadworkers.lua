-- deadworkers.lua: list the workers whose last heartbeat is older than the
-- dead-after threshold, on the Redis server's clock.
--
-- KEYS[1] workers zset   <ns>:workers
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] dead after, ms
-- ARGV[3] max ids to return
--
-- Returns the ids, oldest heartbeat first.
local now = now_ms(ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])), 'LIMIT', 0, tonumber(ARGV[3]))
