-- giveback.lua: give back to `due` the events of a worker's claim records
-- of one shard (claim.lua) that the worker is not delivering: claims whose
-- reply never reached it (the connection broke after Redis ran claim.lua,
-- and go-redis retried the command or gave up). The worker is alive, so
-- without this the event would wait for its lease to expire.
--
-- KEYS[1] the worker's claim records     <P>:claims:<worker>
-- KEYS[2] lease zset                     <P>:lease
-- KEYS[3] due zset                       <P>:due
-- ARGV[1] now, ms (0: use the Redis server clock)
-- ARGV[2] grace, ms: a record written less than this long ago is left
--         alone (the reply of its claim may still be on its way)
-- ARGV[3] event key prefix               <P>:ev:
-- ARGV[4] worker id
-- ARGV[5] wake-up channel
-- ARGV[6] wake-up message
-- ARGV[7..] the members of this shard the worker is delivering or finishing:
--         left alone
--
-- A record the worker did not delete is one whose reply it never had, or
-- had just before it stopped or before this call (it deletes them with its
-- next claim): the members it holds are left alone, the others, still
-- PROCESSING under this worker's claim, go back. The attempt never started,
-- so it does not count: the event goes back to PENDING, due at its due time
-- (it keeps its place), with attempts back to what they were before the
-- claim, no history line and no outbox entry (the claim wrote none either).
-- A member whose lease already expired is left to reap.lua, which counts the
-- attempt: the worker may have sent it and lost track since (its outcome
-- could not be recorded). A record older than the grace is deleted once
-- looked at, unless a member of it is one the worker holds: that record
-- may be a lost claim of an event the worker also holds under an earlier
-- claim (its lease expired and this worker claimed it again), so it stays
-- until the worker lets the event go, and is looked at again then.
--
-- Returns the number of events given back.
local now = now_ms(ARGV[1])
local grace = tonumber(ARGV[2])
local held = {}
for i = 7, #ARGV do held[ARGV[i]] = true end
local n = 0
local recs = redis.call('HGETALL', KEYS[1])
for j = 1, #recs, 2 do
  local at, members = string.match(recs[j + 1], '^(%d+) (.*)$')
  if not at or now - tonumber(at) >= grace then
    local keep = false
    for m in string.gmatch(members or '', '%S+') do
      if held[m] then
        keep = true
      else
        local k = ARGV[3] .. m
        local ev = ev_load(k)
        local v = ev and ev.v
        local lease = v and ev_status(v) == 'PROCESSING' and v[I.worker] == ARGV[4] and redis.call('ZSCORE', KEYS[2], m)
        if lease and tonumber(lease) > now and now - (tonumber(v[I.updated_at]) or 0) >= grace then
          redis.call('ZREM', KEYS[2], m)
          local a = tonumber(v[I.attempts]) or 0
          if a > 0 then a = a - 1 end
          v[I.status], v[I.attempts], v[I.updated_at], v[I.worker] = 'PENDING', a, now, false
          ev_save(k, ev)
          redis.call('ZADD', KEYS[3], tonumber(v[I.due_at]) or now, m)
          n = n + 1
        end
      end
    end
    if not keep then redis.call('HDEL', KEYS[1], recs[j]) end
  end
end
if n > 0 then publish_wake(ARGV[5], ARGV[6]) end
return n
