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
-- ARGV[4..] quadruples, in the order of their entry ids: entry id, member of a final entry ('' for other
--           kinds), the entry's time (a final's is its finish time), and the
--           number of fields its body takes in the hash (chunks, see
--           prelude.lua; 0 for an empty body; '' when not known: every name
--           a body can have)
--
-- Returns the number of entries acknowledged (entries another archiver
-- already acknowledged count 0 but are deleted all the same).

-- id_less tells whether stream id a comes before b.
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end

local ids, finals = {}, {}
for i = 4, #ARGV, 4 do
  ids[#ids + 1] = ARGV[i]
  if ARGV[i + 1] ~= '' then finals[#finals + 1] = i end
end
local n = call_batched({'XACK', KEYS[1], ARGV[1]}, ids)
-- Deleting: entries are read in order and mostly acknowledged in order,
-- so every entry before the group's oldest pending one (or, with none
-- pending, after the last of ids) is acknowledged: one XTRIM MINID drops
-- them, whole stream nodes at a time (measured: 0.1 µs an entry, XDEL
-- 1.2). The acknowledged ones at or past that bound (a held create, or
-- another archiver's batch, is pending before them) go one by one with
-- XDEL, as before. ids are in stream order (the caller sorts them), so a
-- binary search finds the first of those.
if #ids > 0 then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1])
  local bound
  if p[1] > 0 then
    bound = p[2]
    local lo, hi = 1, #ids + 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if id_less(ids[mid], bound) then lo = mid + 1 else hi = mid end
    end
    local past = {}
    for i = lo, #ids do past[#past + 1] = ids[i] end
    call_batched({'XDEL', KEYS[1]}, past)
  else
    local ms, seq = string.match(ids[#ids], '^(%d+)-(%d+)$')
    bound = ms .. '-' .. (tonumber(seq) + 1)
  end
  redis.call('XTRIM', KEYS[1], 'MINID', bound)
end
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
    redis.call('PEXPIREAT', k, int_s(tonumber(f[2]) + tonumber(ARGV[2])))
    -- A delivered event's body is needed only for reads now, and the
    -- archive has it: Redis lets it go (reads take it from the archive).
    -- A failed one keeps it for a retry. One HDEL names the body's fields
    -- (the archiver read the body: it knows how many chunks it takes; each
    -- name costs a scan of the hash), rather than probing for each.
    if f[1] == 'COMPLETED' and nb > 0 then redis.call('HDEL', k, unpack(body, 1, math.min(nb, MAX_CHUNKS))) end
  end
end
return n
