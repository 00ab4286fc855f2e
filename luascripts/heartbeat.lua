-- heartbeat.lua: record that a worker is alive, on the Redis server's clock,
-- so workers with skewed clocks agree on which of them stopped beating.
--
-- KEYS[1] workers zset   <ns>:workers (member: worker id, score: last heartbeat in ms)
-- ARGV[1] worker id
-- ARGV[2] now, ms (0: use the Redis server clock)
--
-- Returns the heartbeat time recorded, in ms.
local now = now_ms(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
