-- schcas.lua: replace or delete a schedule's record if its revision is
-- the one the caller read (compare-and-set), so concurrent writers (API
-- servers, workers chaining occurrences) never lose each other's change.
--
-- KEYS[1] the application's schedules   <ns>:{<ns>:sch:<app>}
-- ARGV[1] schedule id
-- ARGV[2] expected revision; 0: the schedule must not exist
-- ARGV[3] 'set' or 'del'
-- ARGV[4] for 'set': the record (JSON, store/redisstore/schedules.go)
--
-- The hash maps a schedule id to "<revision>|<record>" (one field per
-- schedule: the cheapest form for an idle schedule, whose bytes are a
-- design target). The revision is bumped by every write.
-- Returns {1, new revision} (0 after 'del'), or {0, current revision}
-- when the revision is not the expected one (0: there is no schedule).
local v = redis.call('HGET', KEYS[1], ARGV[1])
local rev = 0
if v then
  rev = tonumber(string.match(v, '^(%d+)|'))
end
if rev ~= tonumber(ARGV[2]) then
  return {0, rev}
end
if ARGV[3] == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {1, 0}
end
redis.call('HSET', KEYS[1], ARGV[1], (rev + 1) .. '|' .. ARGV[4])
return {1, rev + 1}
