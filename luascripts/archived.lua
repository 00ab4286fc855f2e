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
-- ARGV[4..] quadruples: entry id, member of a final entry ('' for other
--           kinds), the entry's time (a final's is its finish time), and the
--           number of fields its body takes in the hash (chunks, see
--           prelude.lua; 0 for an empty body; '' when not known: every name
--           a body can have)
--
-- Returns the number of entries acknowledged (entries another archiver
-- already acknowledged count 0 but are deleted all the same).
local ids, finals = {}, {}
for i = 4, #ARGV, 4 do
  ids[#ids + 1] = ARGV[i]
  if ARGV[i + 1] ~= '' then finals[#finals + 1] = i end
end
local n = call_batched({'XACK', KEYS[1], ARGV[1]}, ids)
call_batched({'XDEL', KEYS[1]}, ids)
local final = {COMPLETED = true, FAILED = true, SERVICE_UNAVAILABLE = true, CANCELLED = true}
local body = {}
for i = 0, MAX_CHUNKS - 1 do body[#body + 1] = chunk_field(F.body, i) end
for _, i in ipairs(finals) do
  local m, t, nb = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]) or MAX_CHUNKS
  local k = ARGV[3] .. m
  local f = redis.call('HMGET', k, F.status, F.finished_at)
  -- Only the archived outcome starts the window: skip an event retried
  -- since (live again) or finished again (its newer outcome is not archived yet).
  if final[f[1]] and f[2] and f[2] == t then
    redis.call('PEXPIREAT', k, tonumber(f[2]) + tonumber(ARGV[2]))
    -- A delivered event's body is needed only for reads now, and the
    -- archive has it: Redis lets it go (reads take it from the archive).
    -- A failed one keeps it for a retry. One HDEL names the body's fields
    -- (the archiver read the body: it knows how many chunks it takes; each
    -- name costs a scan of the hash), rather than probing for each.
    if f[1] == 'COMPLETED' and nb > 0 then redis.call('HDEL', k, unpack(body, 1, math.min(nb, MAX_CHUNKS))) end
  end
end
return n
