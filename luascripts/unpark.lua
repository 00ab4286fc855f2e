-- unpark.lua: make an event that its flow key held back due at its place in
-- the key's queue, now that it holds a permit (flowpump.lua).
--
-- KEYS[1] event            <P>:ev:<app>/<id>
-- KEYS[2] due zset         <P>:due
-- ARGV[1] member
-- ARGV[2] due score, ms (its score in the key's queue: in the past or now)
-- ARGV[3] now, ms (0: use the Redis server clock)
-- ARGV[4] wake-up horizon, ms
-- ARGV[5] wake-up channel
-- ARGV[6] wake-up message
--
-- Returns 1 when the event was PENDING and is due at that score now; 2 when
-- it is PROCESSING (the worker that was holding it back has not parked it
-- yet: it looks at its permit again after parking); 0 when it is gone or
-- in a final state (its permit is of no use).
local now = now_ms(ARGV[3])
local s = status_of(KEYS[1])
if s == 'PROCESSING' then return 2 end
if s ~= 'PENDING' then return 0 end
local cur = redis.call('ZSCORE', KEYS[2], ARGV[1])
local score = tonumber(ARGV[2])
if cur and tonumber(cur) <= score then return 1 end
zadd_wake(KEYS[2], score, ARGV[1], now, ARGV[4], ARGV[5], ARGV[6])
return 1
