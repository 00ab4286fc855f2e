-- archived.lua: the archiver committed a batch of outbox entries to the
-- archive database: acknowledge and delete them, and start the retention
-- window of the finished events among them, and drop the body of the
-- COMPLETED ones. Until then a finished event never expires and keeps
-- its body, so an archive outage loses nothing and every read can show it.
--
-- KEYS[1] outbox       <P>:out
-- ARGV[1] consumer group
-- ARGV[2] retention, ms (counted from the event's finish time)
-- ARGV[3] event key prefix <P>:ev: (same hash tag as KEYS[1])
-- ARGV[4] the namespace's event layout, '1' or '2' (ev_get in prelude.lua)
-- ARGV[5..] quintuples, in the order of their entry ids: entry id ('' for
--           a record of a packed entry whose other records are not all
--           archived yet: the entry stays), member of a final record (''
--           for other kinds), the record's time (a final's is its finish
--           time), and for a final record of a compact event: the value
--           the archiver read, when it showed this run ended at that time
--           ('' when it did not), and what to keep of it ('' for the value
--           itself; a COMPLETED one without its body: the archiver made it
--           as the code below would)
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
for i = 5, #ARGV, 5 do
  if ARGV[i] ~= '' then ids[#ids + 1] = ARGV[i] end
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
for _, i in ipairs(finals) do
  local m, t = ARGV[i + 1], ARGV[i + 2]
  local k = ARGV[3] .. m
  local raw = ev_get(k, ARGV[4])
  local px = int_s(tonumber(t) + tonumber(ARGV[2]))
  local seen = ARGV[i + 3]
  -- Unchanged since the archiver read it, and that read showed this run's
  -- end: what it made is what the code below would (decoding and
  -- rebuilding the value here was most of the script's CPU per event:
  -- 13 of the archive phase's 23 µs in BenchmarkEventLifetime).
  if seen ~= '' and raw == seen then
    local keep = ARGV[i + 4]
    if keep == '' then keep = raw end
    redis.call('SET', k, keep, 'PXAT', px)
  -- Only the archived outcome starts the window: skip an event retried
  -- since (live again) or finished again (its newer outcome is not archived
  -- yet). A delivered event's body is needed only for reads now, and the
  -- archive has it: Redis lets it go (reads take it from the archive). A
  -- failed one keeps it for a retry.
  elseif raw and raw ~= HASH then
    local req, st = compact_sections(k, raw)
    local s, f = compact_pick(k, raw, st, #raw, I.status, I.finished_at)
    if final[s] and f == t then
      local value = raw
      if s == 'COMPLETED' then
        -- Without its body; its state section stays as it is.
        local p = req
        while p < st do
          local i = string.byte(raw, p)
          local n, q = compact_read(raw, p + 1)
          if not n then malformed(k) end
          if i == I.body then
            local r = string.sub(raw, req, p - 1) .. string.sub(raw, q + n, st - 1)
            value = '\2' .. compact_len(#r) .. r .. string.sub(raw, st)
            break
          end
          p = q + n
        end
      end
      -- Written anew in every case, not only given its expiry: a value that
      -- was APPENDed to (its claim, its outcome) holds up to twice its
      -- length (Redis grows a string greedily), which a finished event
      -- would keep through its retention; a SET allocates what it holds.
      redis.call('SET', k, value, 'PXAT', px)
    end
  elseif raw then
    -- A hash: the body's fields go with one HDEL of their names (the
    -- second and third chunks say how many there are; each name costs a
    -- scan of the hash), rather than probing for each.
    local f = redis.call('HMGET', k, F.status, F.finished_at, F.body .. '1', F.body .. '2')
    if final[f[1]] and f[2] == t then
      redis.call('PEXPIREAT', k, px)
      if f[1] == 'COMPLETED' then
        local n = MAX_CHUNKS
        if not f[3] then n = 1 elseif not f[4] then n = 2 end
        local body = {}
        for c = 0, n - 1 do body[#body + 1] = chunk_field(F.body, c) end
        redis.call('HDEL', k, unpack(body))
      end
    end
  end
end
return n
