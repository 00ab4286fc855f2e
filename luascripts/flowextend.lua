-- flowextend.lua: push a running event's flow permit deadline to now +
-- lifetime while its request runs (API.md §9, store/redisstore/flows.go).
-- Deadlines are on the same clock flowacquire.lua compares them with, so a
-- worker whose clock is skewed neither lets a permit end early (more in
-- flight than the parallelism) nor keeps it past its lease.
--
-- KEYS[1] the key's permits zset  <FP>:run
-- ARGV[1] member                  <app>/<event id>
-- ARGV[2] now, ms (0: use the Redis server clock)
-- ARGV[3] lifetime, ms
--
-- A permit already released or taken back stays so (ZADD XX). Returns 1
-- when the permit was there, else 0.
local deadline = now_ms(ARGV[2]) + tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[1])
return 1
