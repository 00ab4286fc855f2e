-- claim.lua: claim up to a batch of due events of one shard for one worker.
--
-- KEYS[1] due zset      <P>:due
-- KEYS[2] lease zset    <P>:lease
-- KEYS[3] claim records <P>:claims:<worker> (a hash)
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] batch size
-- ARGV[3] visibility timeout, ms
-- ARGV[4] worker id
-- ARGV[5] event key prefix <P>:ev: (same hash tag as KEYS)
-- ARGV[6] the shard's pause table <P>:paused (same hash tag)
-- ARGV[7] park key prefix <P>:park: (same hash tag)
-- ARGV[8] the namespace's event layout, '1' or '2' (ev_get in prelude.lua)
-- ARGV[9] the name of this call's claim record (unique in the worker's
--         process)
-- ARGV[10..] the names of earlier records whose reply reached the worker:
--         deleted
--
-- Claim records: a claim whose reply never reaches the worker (the
-- connection broke after Redis ran the script) leaves events PROCESSING
-- that nobody delivers. Each call that claims writes one record, field
-- ARGV[9] of the worker's hash (of this shard), value: now, then the
-- members claimed, space-separated; the worker names the records whose
-- reply it had in its next call, which deletes them. A record left there
-- is a lost reply: giveback.lua gives its events back. The worker keeps no
-- list of every event it holds (a command per finished event, which
-- finishing no longer spends): expireworker.lua finds a dead worker's events
-- in the lease zset. A call sent again (go-redis retries after a broken
-- connection) finds its record written by the first run and writes its own
-- under another name: the reply names the one it wrote.
--
-- Paused applications and flow keys (API.md §9, store/redisstore/flows.go):
-- while the pause table has field 'a:<app>' or 'f:<app>/<flow key>', a due
-- event of that application or key is not claimed but parked in the zset
-- <P>:park:<field> at its due score: it stays PENDING, no attempt is used,
-- and unpause.lua puts it back in due order when the pause ends.
--
-- Each claimed member leaves `due`, joins `lease`
-- (score = now + visibility), becomes PROCESSING with attempts + 1.
-- Returns {now, next_due, record, n, then n times: member, attempts
-- (counting this one), the event as it was before the claim changed it};
-- record is the name of the claim record written ('' when none) and next_due is
-- the earliest remaining due time (-1 when none), so the worker can sleep
-- until exactly then on the server's clock. The event is its compact value
-- as stored (layout 2, see prelude.lua) or, for a hash (layout 1), its
-- field, value pairs as HGETALL gives them; store/redisstore
-- (decodeClaimed) keeps what a delivery needs.
--
-- Per event it costs two commands in a namespace of compact events (a GET
-- and an APPEND) and three in one of hashes (TYPE, HGETALL, HSET: see
-- ev_get); the batch's members leave `due` and join `lease` in one command
-- each, and one record names them all.
local now = now_ms(ARGV[1])
local deadline = now + tonumber(ARGV[3])
local now_s, deadline_s = int_s(now), int_s(deadline) -- see int_s (prelude.lua)
-- Without WITHSCORES: Redis writes each score with "%.17g" and the
-- script would make a string of it, ~1 µs a member (measured, redis-server
-- 7.0: 100 members 130 µs with their scores, 36 without), for a score
-- that only parking needs (ZSCORE, below). Arguments go as strings (see
-- int_s in prelude.lua).
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_s, 'LIMIT', '0', ARGV[2])
-- Pauses matter only to a call with something due: a claim that finds
-- nothing (a worker's wake-up or poll of a quiet shard) skips the command.
local paused = #members > 0 and redis.call('EXISTS', ARGV[6]) == 1
local res = {now, -1, '', 0}
local n = 0
if #ARGV >= 10 then redis.call('HDEL', KEYS[3], unpack(ARGV, 10, #ARGV)) end

-- parked_by returns the pause field that holds member m (flow key fk, or
-- false) back, or nil.
local function parked_by(m, fk)
  local app = string.match(m, '^([^/]*)/')
  if redis.call('HEXISTS', ARGV[6], 'a:' .. app) == 1 then return 'a:' .. app end
  if fk and redis.call('HEXISTS', ARGV[6], 'f:' .. app .. '/' .. fk) == 1 then return 'f:' .. app .. '/' .. fk end
  return nil
end

local gone, leased, pushed = {}, {}, {now_s}
local updated = {} -- a compact event's update time field (prelude.lua compact_field)
compact_field(updated, I.updated_at, now_s)
updated = table.concat(updated)
local appended = {} -- attempt number → what a claim appends (below)
for i = 1, #members do
  local m = members[i]
  gone[#gone + 1] = m
  local k = ARGV[5] .. m
  local raw = ev_get(k, ARGV[8])
  if raw then -- none: the event is gone
    -- A compact event never claimed has only its due time in its state
    -- section: attempts 0, nothing to decode; any other is decoded. A hash
    -- is read whole (HGETALL: a quarter of what an HMGET of its fields
    -- costs) and handed back as it is.
    local compact, a, fk, ev = raw ~= HASH, 0, nil, nil
    if compact then
      local _, st = compact_sections(k, raw)
      local _, after = compact_first(k, raw, st, I.due_at)
      if after <= #raw then ev = ev_from(k, raw) end
      if ev then a = tonumber(ev.v[I.attempts]) or 0 end
      if paused then fk = ev_full(k, ev or ev_from(k, raw))[I.flow_key] end
    else
      raw = redis.call('HGETALL', k)
      for j = 1, #raw, 2 do
        local f = raw[j]
        if f == F.attempts then a = tonumber(raw[j + 1]) or 0
        elseif f == F.flow_key then fk = raw[j + 1] end
      end
    end
    local field = nil
    if paused then field = parked_by(m, fk) end
    if field then
      redis.call('ZADD', ARGV[7] .. field, redis.call('ZSCORE', KEYS[1], m), m)
    else
      a = a + 1
      if compact then
        -- Appended: the update time, then the lease tail ack_event looks
        -- for; made once per attempt number in a call.
        local s = appended[a]
        if not s then
          s = updated .. lease_tail(ARGV[4], int_s(a))
          appended[a] = s
        end
        redis.call('APPEND', k, s)
      else
        redis.call('HSET', k, F.attempts, int_s(a), F.status, 'PROCESSING', F.worker, ARGV[4], F.updated_at, now_s)
      end
      leased[#leased + 1] = deadline_s
      leased[#leased + 1] = m
      pushed[#pushed + 1] = m
      res[#res + 1] = m
      res[#res + 1] = a
      res[#res + 1] = raw
      n = n + 1
    end
  end
end
call_batched({'ZREM', KEYS[1]}, gone)
call_batched({'ZADD', KEYS[2]}, leased)
if n > 0 then
  local rec, name = table.concat(pushed, ' '), ARGV[9]
  if redis.call('HSETNX', KEYS[3], name, rec) == 0 then
    -- Sent again, or a name an earlier process of this worker id used.
    local i = 1
    while redis.call('HSETNX', KEYS[3], name .. '~' .. i, rec) == 0 do i = i + 1 end
    name = name .. '~' .. i
  end
  res[3] = name
end
res[4] = n
local first = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')
if first[2] then res[2] = tonumber(first[2]) end
return res
