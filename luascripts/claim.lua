-- claim.lua: claim up to a batch of due events of one shard for one worker.
--
-- KEYS[1] due zset      <P>:due
-- KEYS[2] lease zset    <P>:lease
-- KEYS[3] worker list   <P>:proc:<worker>
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] batch size
-- ARGV[3] visibility timeout, ms
-- ARGV[4] worker id
-- ARGV[5] event hash key prefix <P>:ev: (same hash tag as KEYS)
-- ARGV[6] the shard's pause table <P>:paused (same hash tag)
-- ARGV[7] park key prefix <P>:park: (same hash tag)
--
-- Paused applications and flow keys (API.md §9, store/redisstore/flows.go):
-- while the pause table has field 'a:<app>' or 'f:<app>/<flow key>', a due
-- event of that application or key is not claimed but parked in the zset
-- <P>:park:<field> at its due score: it stays PENDING, no attempt is used,
-- and unpause.lua puts it back in due order when the pause ends.
--
-- Each claimed member leaves `due`, joins the worker's list and `lease`
-- (score = now + visibility), becomes PROCESSING with attempts + 1.
-- Returns {now, next_due, n, then n times: member, attempts (counting this
-- one), the event hash's field, value pairs as HGETALL gives them before
-- the claim changed it (a nested list)}, and next_due is the earliest
-- remaining due time (-1 when none), so the worker can sleep until exactly
-- then on the server's clock. store/redisstore (decodeClaimed) joins the
-- chunks and keeps what a delivery needs.
--
-- Per event it costs two commands (HGETALL, HSET); the batch's members
-- leave `due` and join `lease` and the worker's list in one command each.
-- One HGETALL handed back as it is costs a quarter of what an HMGET of the
-- fields a delivery needs costs in Redis (measured: 2.5 against 9.5 µs per
-- event): every asked-for field is a scan of the hash's listpack, and each
-- value, absent ones too, is a Lua value to build and copy.
local now = now_ms(ARGV[1])
local deadline = now + tonumber(ARGV[3])
local now_s, deadline_s = int_s(now), int_s(deadline) -- see int_s (prelude.lua)
local paused = redis.call('EXISTS', ARGV[6]) == 1
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local res = {now, -1, 0}
local n = 0

-- parked_by returns the pause field that holds member m (event hash k,
-- flow key fk) back, or nil.
local function parked_by(m, fk)
  local app = string.match(m, '^([^/]*)/')
  if redis.call('HEXISTS', ARGV[6], 'a:' .. app) == 1 then return 'a:' .. app end
  if fk and redis.call('HEXISTS', ARGV[6], 'f:' .. app .. '/' .. fk) == 1 then return 'f:' .. app .. '/' .. fk end
  return nil
end

local gone, leased, pushed = {}, {}, {}
for i = 1, #members, 2 do
  local m = members[i]
  gone[#gone + 1] = m
  local k = ARGV[5] .. m
  local all = redis.call('HGETALL', k)
  if #all > 0 then -- none: the hash is gone
    local a, fk = 0, nil
    for j = 1, #all, 2 do
      local f = all[j]
      if f == F.attempts then a = tonumber(all[j + 1]) or 0
      elseif f == F.flow_key then fk = all[j + 1] end
    end
    local field = nil
    if paused then field = parked_by(m, fk) end
    if field then
      redis.call('ZADD', ARGV[7] .. field, members[i + 1], m)
    else
      a = a + 1
      redis.call('HSET', k, F.attempts, int_s(a), F.status, 'PROCESSING', F.worker, ARGV[4], F.updated_at, now_s)
      leased[#leased + 1] = deadline_s
      leased[#leased + 1] = m
      pushed[#pushed + 1] = m
      res[#res + 1] = m
      res[#res + 1] = a
      res[#res + 1] = all
      n = n + 1
    end
  end
end
call_batched({'ZREM', KEYS[1]}, gone)
call_batched({'ZADD', KEYS[2]}, leased)
call_batched({'RPUSH', KEYS[3]}, pushed)
res[3] = n
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then res[2] = tonumber(first[2]) end
return res
