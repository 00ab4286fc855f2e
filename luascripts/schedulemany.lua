-- schedulemany.lua: create a batch of events of one shard, each unless its
-- identity already exists: schedule.lua for many events in one call, which
-- saves a script call per event (the batch route, fan-out, occurrences).
--
-- KEYS[1] due zset     <P>:due
-- KEYS[2] outbox       <P>:out
-- ARGV[1] event key prefix <P>:ev: (same hash tag as KEYS)
-- ARGV[2] wake-up channel
-- ARGV[3] wake-up message (the shard number)
-- ARGV[4] now, ms (0: use the Redis server clock)
-- ARGV[5] wake horizon, ms: publish only when an event is due within it
-- ARGV[6] '1': write the batch's create entries packed (xadd_packed in
--          prelude.lua; a namespace of layout 3), else one per event
-- ARGV[7..] per event: n, the number of values that follow for it, then its
--          member, due time (ms), created (ms), url, method, flow key ('' for
--          none) and the event as schedule.lua takes it (its
--          ARGV[11..])
--
-- Events are taken in order, so a second event with the identity of an
-- earlier one in the batch finds it existing. Each new event gets the
-- outbox 'create' entry schedule.lua gives it, or its record in the
-- batch's packed entries (written last, after every event: a failing
-- event stops the batch, and what was created before it keeps its
-- records); one wake-up is published
-- when any of them moves the shard's earliest due time forward within the
-- horizon.
--
-- Returns one value per event: 1 when created, else the existing event as
-- append_event gives it, for the caller to compare.
local now = now_ms(ARGV[4])
local first = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')
local earliest = first[2] and tonumber(first[2])
local horizon = tonumber(ARGV[5])
local res, zadd, wake = {}, {}, false
local pack = ARGV[6] == '1' and {} or nil
local ok, err = pcall(function()
  local i = 7
  while i <= #ARGV do
    local n = tonumber(ARGV[i])
    local m, due = ARGV[i + 1], tonumber(ARGV[i + 2])
    local k = ARGV[1] .. m
    -- A hash's fields (more than one value): look for the event first; a
    -- compact value's SET NX looks by itself (add_event). The due time as
    -- it came (a string: see int_s in prelude.lua).
    local ev = n > 7 and ev_load(k)
    if ev or not add_event(k, KEYS[2], m, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV,
        i + 7, i + n, pack) then
      res[#res + 1] = append_event({}, k, ev or ev_load(k))
    else
      zadd[#zadd + 1] = ARGV[i + 2]
      zadd[#zadd + 1] = m
      if (earliest == nil or due < earliest) and due - now < horizon then wake = true end
      res[#res + 1] = 1
    end
    i = i + n + 1
  end
end)
-- The events created before a failure are due and archived all the same
-- (the caller sees the error and sends the batch again, which finds them).
if pack then xadd_packed(KEYS[2], 'creates', pack) end
call_batched({'ZADD', KEYS[1]}, zadd)
if wake then publish_wake(ARGV[2], ARGV[3]) end
if not ok then return error_of(err) end
return res
