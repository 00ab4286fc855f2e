-- schcas.lua: replace or delete a schedule's record if its revision is
-- the one the caller read (compare-and-set), so concurrent writers (API
-- servers, workers chaining occurrences) never lose each other's change.
--
-- KEYS[1] the schedule's hash   <ns>:{<ns>:sch:<app>/<id>}
-- ARGV[1] expected revision; 0: the schedule must not exist
-- ARGV[2] 'set' or 'del'
-- ARGV[3] for 'set': the record (JSON, store/redisstore/schedules.go)
--
-- The hash holds r (revision, bumped by every write) and d (the record).
-- Returns {1, new revision} (0 after 'del'), or {0, current revision}
-- when the revision is not the expected one (0: there is no schedule).
local rev = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
if rev ~= tonumber(ARGV[1]) then
  return {0, rev}
end
if ARGV[2] == 'del' then
  redis.call('DEL', KEYS[1])
  return {1, 0}
end
redis.call('HSET', KEYS[1], 'r', rev + 1, 'd', ARGV[3])
return {1, rev + 1}
