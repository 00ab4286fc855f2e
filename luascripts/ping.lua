-- ping.lua: the health check. Running it shows that Redis answers, runs
-- Cassata's scripts (loading it again after a restart or SCRIPT FLUSH) and
-- holds the namespace's shard count, which it records again when a Redis
-- that restarted without its data lost it.
--
-- KEYS[1] meta hash   <ns>:meta
-- ARGV[1] the shard count this process uses
--
-- Returns the namespace's shard count and the Redis server's clock in ms.
redis.call('HSETNX', KEYS[1], 'shards', ARGV[1])
return {tonumber(redis.call('HGET', KEYS[1], 'shards')) or 0, now_ms(0)}
