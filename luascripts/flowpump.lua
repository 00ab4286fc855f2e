-- flowpump.lua: release a flow key's permit and grant permits to its held
-- events, oldest first, as far as the limits allow now (API.md §9,
-- store/redisstore/flows.go).
--
-- KEYS[1..3] as flowacquire.lua: <FP> (r, p, z, tat), <FP>:run, <FP>:q
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] permit lifetime, ms
-- ARGV[3] most grants in this call
-- ARGV[4] member whose permit ends ('' for none): its delivery is over
--
-- A granted event leaves the queue holding a permit; the caller makes it
-- due again (unpark.lua) and whichever worker claims it finds the permit
-- (flowacquire.lua). Nothing is granted while the key is paused (z).
-- A key whose limits were removed grants to every held event.
--
-- Returns {wake, member1, score1, member2, score2, ...}: wake is when more
-- may be granted (the next rate slot or the earliest permit deadline) while
-- events are still held, 0 when none are or only a release can tell.
local now = now_ms(ARGV[1])
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
local cfg = redis.call('HMGET', KEYS[1], 'r', 'p', 'z', 'tat')
local rate, par = tonumber(cfg[1]), tonumber(cfg[2])
local out = {0}
if cfg[3] == '1' then return out end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local deadline = now + tonumber(ARGV[2])
local tat = tonumber(cfg[4]) or 0
local max = tonumber(ARGV[3])
local n = 0
while n < max do
  local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if not head[1] then break end
  if par and redis.call('ZCARD', KEYS[2]) >= par then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if first[2] then out[1] = tonumber(first[2]) end
    break
  end
  if rate and tat > now then
    out[1] = math.floor(tat)
    break
  end
  redis.call('ZREM', KEYS[3], head[1])
  if rate or par then redis.call('ZADD', KEYS[2], deadline, head[1]) end
  if rate then tat = math.max(tat, now) + 1000 / rate end
  out[#out + 1] = head[1]
  out[#out + 1] = head[2]
  n = n + 1
end
if rate then redis.call('HSET', KEYS[1], 'tat', tostring(tat)) end
return out
