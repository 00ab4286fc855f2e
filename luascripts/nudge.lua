-- nudge.lua: make a PENDING event due now if it is due later. A delivery
-- that reaches a final status nudges its message, so the message's next
-- recheck (recheck.lua) happens at once instead of at its scheduled time.
--
-- KEYS[1] due zset   <P>:due
-- ARGV[1] member
-- ARGV[2] now, ms (0: use the Redis server clock)
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message (the shard number)
-- ARGV[5] wake horizon, ms
--
-- An event not in `due` (being processed, finished, gone) is left alone: a
-- message being processed looks at its deliveries before it is handed back.
-- Returns 1 when the event was moved, else 0.
local now = now_ms(ARGV[2])
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) <= now then return 0 end
zadd_wake(KEYS[1], now, ARGV[1], now, ARGV[5], ARGV[3], ARGV[4])
return 1
