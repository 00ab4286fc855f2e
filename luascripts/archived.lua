-- archived.lua: the archiver committed a batch of outbox entries to the
-- archive database: acknowledge and delete them, and start the retention
-- window of the finished events among them, and drop the body of the
-- COMPLETED ones. Until then a finished event's hash never expires and keeps
-- its body, so an archive outage loses nothing and every read can show it.
--
-- KEYS[1] outbox       <P>:out
-- ARGV[1] consumer group
-- ARGV[2] retention, ms (counted from the event's finish time)
-- ARGV[3] event hash key prefix <P>:ev: (same hash tag as KEYS[1])
-- ARGV[4..] triples: entry id, member of a final entry ('' for other kinds),
--           the entry's time (a final's is its finish time)
--
-- Returns the number of entries acknowledged (entries another archiver
-- already acknowledged count 0 but are deleted all the same).
local n = 0
local final = {COMPLETED = true, FAILED = true, SERVICE_UNAVAILABLE = true, CANCELLED = true}
for i = 4, #ARGV, 3 do
  local id, m, t = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  n = n + redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
  if m ~= '' then
    local k = ARGV[3] .. m
    local f = redis.call('HMGET', k, F.status, F.finished_at)
    -- Only the archived outcome starts the window: skip an event retried
    -- since (live again) or finished again (its newer outcome is not archived yet).
    if final[f[1]] and f[2] and f[2] == t then
      redis.call('PEXPIREAT', k, tonumber(f[2]) + tonumber(ARGV[2]))
      -- A delivered event's body is needed only for reads now, and the
      -- archive has it: Redis lets it go (reads take it from the archive).
      -- A failed one keeps it for a retry.
      if f[1] == 'COMPLETED' then long_trim(k, F.body, 0) end
    end
  end
end
return n
