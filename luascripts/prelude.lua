-- prelude.lua: helpers prepended to every script (scripts.go joins them), so
-- each script stays one self-contained EVAL body.

-- now_ms returns the time in ms: the caller's (tests inject a clock) or,
-- when the caller passes 0, the Redis server's, so workers with skewed
-- clocks agree on what is due.
local function now_ms(arg)
  local now = tonumber(arg)
  if now == nil or now == 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- int_s returns integer n as a decimal string. A number handed to
-- redis.call is written with "%.17g" and parsed back by the command: 0.3 µs
-- per argument more than a string (measured). Scripts pass the strings of
-- their numbers: the caller's argument as it came when they have it, else
-- int_s, which writes each distinct value once per call (an attempt
-- count, the time of the call).
local INT_S = {}
local function int_s(n)
  local s = INT_S[n]
  if not s then
    s = string.format('%d', n)
    INT_S[n] = s
  end
  return s
end

-- F names the fields of an event (a hash's field names), FIELDS lists them in the codec's
-- order: the order in which scripts return an event (append_values). Both
-- mirror the table of store/redisstore/codec.go, which says what each field
-- holds and how; F is keyed by the Go field name in snake case.
-- TestPreludeMirrorsCodec fails when the two sides differ. Scripts never
-- build F: scripts.go (inlineFields) puts each F.<name> in as its literal
-- and leaves this table out of the text Redis runs.
local F = {
  url = 'u', method = 'm', headers = 'h', body = 'b', due_at = 'd', status = 's',
  attempts = 'a', max_attempts = 'x', timeout = 'to', min_backoff = 'bn',
  max_backoff = 'bx', created_at = 'c', updated_at = 't', finished_at = 'f',
  last_status_code = 'lc', last_error = 'le', worker = 'w', history = 'hi',
  kind = 'k', topic = 'tp', mode = 'mo', parent = 'pa', plan = 'pl',
  callback_url = 'cb', failure_callback_url = 'fcb', flow_key = 'fk',
  trace_parent = 'tc',
}
local FIELDS = {
  F.url, F.method, F.headers, F.body, F.due_at, F.status,
  F.attempts, F.max_attempts, F.timeout, F.min_backoff,
  F.max_backoff, F.created_at, F.updated_at, F.finished_at,
  F.last_status_code, F.last_error, F.worker, F.history,
  F.kind, F.topic, F.mode, F.parent, F.plan,
  F.callback_url, F.failure_callback_url, F.flow_key, F.trace_parent,
}

-- Long values of an event hash (LONG_AT below: url u, headers h, body b,
-- history hi, plan pl, last error le, callback urls cb and fcb) are stored in chunks of at most CHUNK bytes: field f holds the
-- first, f..'1', f..'2', ... the next ones, so the hash of an ordinary event
-- stays listpack-encoded on a default Redis (hash-max-listpack-value 64).
-- A value longer than CHUNK * MAX_CHUNKS is stored whole in f. Readers join
-- f, f..'1', ... up to the first missing chunk, so values stored whole read
-- as before; writers delete the chunks an older, longer value left. The Go
-- side (store/redisstore/chunks.go) uses the same layout and constants.
local CHUNK, MAX_CHUNKS = 64, 16

local function chunk_field(f, i)
  if i == 0 then return f end
  return f .. i
end

-- call_batched calls redis with the arguments head followed by the values of
-- list, 500 at a time (Lua's unpack has a limit; 500 keeps ZADD's score,
-- member pairs whole), and returns the sum of the replies (0 for a reply
-- that is not a number).
local function call_batched(head, list)
  local sum = 0
  for i = 1, #list, 500 do
    local args = {unpack(head)}
    for j = i, math.min(i + 499, #list) do args[#args + 1] = list[j] end
    local r = redis.call(unpack(args))
    if type(r) == 'number' then sum = sum + r end
  end
  return sum
end

-- long_count is the number of fields value v of a long field takes (0 when
-- v is absent or empty: put_long stores nothing then).
local function long_count(v)
  if not v or v == '' then return 0 end
  if #v > CHUNK and #v <= CHUNK * MAX_CHUNKS then return math.ceil(#v / CHUNK) end
  return 1
end

-- put_long adds to set the field, value pairs that store v in a long field
-- f (nothing for an empty v) and to del the chunk fields of old, its old
-- value (false when absent), that the new one does not overwrite, so one
-- HSET and at most one HDEL write it, with no probing.
local function put_long(set, del, f, v, old)
  local n = long_count(v)
  if n == 1 then
    set[#set + 1] = f; set[#set + 1] = v
  else
    for i = 0, n - 1 do
      set[#set + 1] = chunk_field(f, i)
      set[#set + 1] = string.sub(v, i * CHUNK + 1, (i + 1) * CHUNK)
    end
  end
  for i = n, long_count(old) - 1 do del[#del + 1] = chunk_field(f, i) end
end

-- write_fields applies what put_long (and the caller) gathered.
local function write_fields(k, set, del)
  if #set > 0 then redis.call('HSET', k, unpack(set)) end
  if #del > 0 then redis.call('HDEL', k, unpack(del)) end
end

-- Events are stored in one of two layouts (store/redisstore/codec.go):
-- layout 1, a hash of the fields F names (long values chunked, see
-- above), and layout 2, one string, compact: the byte 2, the length of its
-- request section, the request section and the state section. A section
-- is a run of fields: its position in FIELDS (one byte), its length and
-- its bytes (lengths are LEB128: 7 bits a byte, the lowest first, the high
-- bit set on all but the last). The state section has the fields scripts
-- change (STATE and the due time), the request section the others, which
-- no script changes but archived.lua (it drops a delivered event's body).
-- The request section starts with the creation time, the state section
-- with the due time: both are read where they are, without decoding.
--
-- The state section is a log: a change APPENDs the fields it changed (no
-- rewrite, no copy); a later field wins over an earlier one, but history
-- lines add up (a field hi holds the lines after those before it), and the
-- byte 128 + i says that field i is absent from then on. A change of the due
-- time, or a section grown past STATE_MAX, writes the value anew, each
-- field once (ev_rewrite).
--
-- A namespace's creates write the layout its <ns>:meta records (add_event
-- is handed one or the other); every script reads both and writes an event
-- back in the layout it has, so events of both kinds live side by side
-- while an older namespace moves over.
--
-- I.<name> is the position of F.<name> in FIELDS: scripts.go (inlineFields)
-- writes it in as a number, as it writes F.<name> in as the field's name.
local NF = #FIELDS
-- LONG_AT[i]: field i is long (chunked in layout 1). In both layouts an
-- empty long value is not stored.
local LONG_AT = {[I.url] = true, [I.headers] = true, [I.body] = true, [I.history] = true,
  [I.last_error] = true, [I.plan] = true, [I.callback_url] = true, [I.failure_callback_url] = true}
-- STATE lists the fields of a compact value's state section after its
-- first, the due time.
local STATE = {I.status, I.attempts, I.updated_at, I.finished_at, I.last_status_code, I.last_error,
  I.worker, I.history, I.plan}
local STATE_MAX = 1024

-- compact_len writes length n as LEB128.
local function compact_len(n)
  if n < 128 then return string.char(n) end
  local b = {}
  while n >= 128 do
    b[#b + 1] = n % 128 + 128
    n = math.floor(n / 128)
  end
  b[#b + 1] = n
  return string.char(unpack(b))
end

-- compact_read reads a LEB128 length at byte p of s: the length and the
-- byte after it.
local function compact_read(s, p)
  local b = string.byte(s, p)
  if not b or b < 128 then return b, p + 1 end
  local n, mul = b - 128, 128
  repeat
    p = p + 1
    b = string.byte(s, p)
    if not b then return nil, p end
    n = n + (b % 128) * mul
    mul = mul * 128
  until b < 128
  return n, p + 1
end

local function malformed(k)
  error('event ' .. k .. ': malformed compact value')
end

-- compact_fields reads the fields of compact value s (of event k) from
-- byte p to byte e into v (v[i]: the value of FIELDS[i]; see above for how
-- the fields of a log add up).
local function compact_fields(k, s, p, e, v)
  while p <= e do
    local i, n = string.byte(s, p, p + 1)
    if i > 128 then
      if i > 128 + NF then malformed(k) end
      v[i - 128] = nil
      p = p + 1
    else
      local q = p + 2
      if n and n >= 128 then n, q = compact_read(s, p + 1) end
      if i < 1 or i > NF or not n or q + n - 1 > e then malformed(k) end
      local x = string.sub(s, q, q + n - 1)
      if i == I.history and v[i] then x = v[i] .. x end
      v[i] = x
      p = q + n
    end
  end
end

-- compact_first reads the field at byte p of compact value s (of event k),
-- which must be field i: its value and the byte after it.
local function compact_first(k, s, p, i)
  local n, q = compact_read(s, p + 1)
  if string.byte(s, p) ~= i or not n then malformed(k) end
  return string.sub(s, q, q + n - 1), q + n
end

-- compact_pick reads fields i and j of compact value s (of event k) from
-- byte p to byte e, as compact_fields would, without reading the others.
local function compact_pick(k, s, p, e, i, j)
  local x, y
  while p <= e do
    local t, n = string.byte(s, p, p + 1)
    if t > 128 then
      if t == 128 + i then x = nil elseif t == 128 + j then y = nil end
      p = p + 1
    else
      local q = p + 2
      if n and n >= 128 then n, q = compact_read(s, p + 1) end
      if not n or q + n - 1 > e then malformed(k) end
      if t == i then x = string.sub(s, q, q + n - 1) elseif t == j then y = string.sub(s, q, q + n - 1) end
      p = q + n
    end
  end
  return x, y
end

-- compact_sections reads where the sections of compact value s (of event k)
-- start: the request section's first byte, and the state section's.
local function compact_sections(k, s)
  if string.byte(s, 1) ~= 2 then error('event ' .. k .. ': not a compact value') end
  local n, p = compact_read(s, 2)
  if not n or p + n > #s then malformed(k) end
  return p, p + n
end

-- compact_field writes field i with value x (a string or an integer; nil
-- or false: absent, 128 + i) to the list out.
local function compact_field(out, i, x)
  if not x then
    out[#out + 1] = string.char(128 + i)
    return
  end
  if type(x) == 'number' then x = int_s(x) end
  local n = #x
  if n == 0 and LONG_AT[i] then
    out[#out + 1] = string.char(128 + i)
  elseif n < 128 then
    out[#out + 1] = string.char(i, n)
    out[#out + 1] = x
  else
    out[#out + 1] = string.char(i) .. compact_len(n)
    out[#out + 1] = x
  end
end

-- lease_tail is what claim.lua appends to a compact event for worker and
-- attempt (a string), after its update time: while a value ends with it,
-- nothing changed the event since that claim (ack_event's fast path). A
-- call builds each one once (a batch's are mostly the same), and finds it
-- again without making a string: Redis's Lua hashes every byte of every
-- string a script makes (about a tenth of redis-server's CPU in a
-- profile of an event's whole life).
local TAILS = {} -- worker → attempt → tail
local function lease_tail(worker, attempt)
  local of = TAILS[worker]
  if not of then
    of = {}
    TAILS[worker] = of
  end
  local tail = of[attempt]
  if not tail then
    local out = {}
    compact_field(out, I.attempts, attempt)
    compact_field(out, I.status, 'PROCESSING')
    compact_field(out, I.worker, worker)
    tail = table.concat(out)
    of[attempt] = tail
  end
  return tail
end

-- ends_with tells whether string s ends with string tail, without making
-- a substring.
local function ends_with(s, tail)
  local at = #s - #tail + 1
  return at >= 1 and string.find(s, tail, at, true) == at
end

-- hash_values reads an event hash, as HGETALL gives it, into the values of
-- FIELDS (nil where a field is absent), long values joined from their
-- chunks up to the first missing one. One HGETALL reads a hash for a
-- quarter of what an HMGET of its fields costs (every asked-for field is a
-- scan of the listpack).
local POS = nil -- field name → position in FIELDS, built at the first hash
local function hash_values(all)
  if not POS then
    POS = {}
    for i, f in ipairs(FIELDS) do POS[f] = i end
  end
  local v, chunks = {}, nil
  for j = 1, #all, 2 do
    local i = POS[all[j]]
    if i then
      v[i] = all[j + 1]
    else
      chunks = chunks or {}
      chunks[all[j]] = all[j + 1]
    end
  end
  if chunks then
    for i in pairs(LONG_AT) do
      local f = FIELDS[i]
      if v[i] and chunks[f .. '1'] then
        local parts, c = {v[i]}, 1
        while chunks[f .. c] do
          parts[#parts + 1] = chunks[f .. c]
          c = c + 1
        end
        v[i] = table.concat(parts)
      end
    end
  end
  return v
end

-- long_join returns field f of hash k given its value v0 and that of its
-- second chunk v1 (both from one HMGET), fetching any further chunks.
local function long_join(k, f, v0, v1)
  if not v0 or not v1 then return v0 end
  local parts, i = {v0, v1}, 2
  while true do
    local c = redis.call('HGET', k, f .. i)
    if not c then break end
    parts[#parts + 1] = c
    i = i + 1
  end
  return table.concat(parts)
end

-- ev_get reads event k as stored: its compact value, HASH when it is a
-- hash, nil when there is none. With layout '2' (the namespace's, as the
-- hot scripts are told: its events are compact) a GET is tried first; a
-- hash, which a namespace that moved over may still have, makes it fail
-- (WRONGTYPE). Else one TYPE tells which, so no command fails on the wrong
-- type in a namespace of hashes (an operator would see those in INFO
-- errorstats).
local HASH = {}
local function ev_get(k, layout)
  if layout == '2' then
    local s = redis.pcall('GET', k)
    if type(s) == 'table' then return HASH end
    return s or nil
  end
  local t = redis.call('TYPE', k).ok
  if t == 'string' then return redis.call('GET', k) end
  if t == 'hash' then return HASH end
  return nil
end

-- ev_load reads event k, in either layout, as a record (ev_from, given
-- what ev_get answered, makes it): v, the values of
-- FIELDS (v[i], nil where field i is absent; long values whole), lay, its
-- layout (1 or 2), and old, a copy of v as read (ev_save writes only what
-- changed); nil when there is no event k. A compact event's v and old have
-- its state section and creation time only, until ev_full; raw is its
-- value as stored, req and st where its request and state sections start.
-- A hash is read with HGETALL (hash_values).
local function ev_from(k, s)
  if not s then return nil end
  if s ~= HASH then
    local req, st = compact_sections(k, s)
    -- The creation time too, which every outbox entry carries.
    local v, old = {[I.created_at] = compact_first(k, s, req, I.created_at)}, {}
    compact_fields(k, s, st, #s, v)
    for i, x in pairs(v) do old[i] = x end
    return {v = v, old = old, lay = 2, raw = s, req = req, st = st}
  end
  local v = hash_values(redis.call('HGETALL', k))
  local old = {}
  for i, x in pairs(v) do old[i] = x end
  return {v = v, old = old, lay = 1}
end

local function ev_load(k)
  return ev_from(k, ev_get(k))
end

-- ev_full completes record ev of event k with its request section (a
-- compact event's; a hash's v is whole already) and returns its values.
local function ev_full(k, ev)
  if ev.lay == 2 and not ev.full then
    compact_fields(k, ev.raw, ev.req, ev.st - 1, ev.v)
    ev.full = true
  end
  return ev.v
end

-- ev_rewrite writes compact event k (record ev) anew, keeping its expiry:
-- its request section as it is, its due time, and the fields of STATE that
-- v has, each once.
local function ev_rewrite(k, ev)
  local req = string.sub(ev.raw, ev.req, ev.st - 1)
  local out = {'\2', compact_len(#req), req}
  local v = ev.v
  compact_field(out, I.due_at, v[I.due_at])
  for _, i in ipairs(STATE) do
    if v[i] then compact_field(out, i, v[i]) end
  end
  redis.call('SET', k, table.concat(out), 'KEEPTTL')
end

-- ev_save writes record ev (ev_load) of event k back in its layout: for a
-- compact event, the state fields that changed, appended to its value (a
-- new due time, or a section past STATE_MAX: the value anew); for a hash,
-- the fields that changed (long ones chunked; an absent value deletes the
-- field). Its expiry stays. Values may be strings or integers; false or
-- nil is absent. A compact event's history may only grow.
local function ev_save(k, ev)
  local v, old = ev.v, ev.old
  if ev.lay == 2 then
    local due = v[I.due_at]
    if type(due) == 'number' then due = int_s(due) end
    if due ~= old[I.due_at] or #ev.raw - ev.st + 1 > STATE_MAX then return ev_rewrite(k, ev) end
    local out = {}
    for _, i in ipairs(STATE) do
      local x, o = v[i] or nil, old[i]
      if type(x) == 'number' then x = int_s(x) end
      if x == '' and LONG_AT[i] then x = nil end
      if x ~= o then
        if i == I.history and o then
          if not x or string.sub(x, 1, #o) ~= o then return ev_rewrite(k, ev) end
          x = string.sub(x, #o + 1)
        end
        compact_field(out, i, x)
      end
    end
    if #out > 0 then redis.call('APPEND', k, table.concat(out)) end
    return
  end
  local set, del = {}, {}
  for i = 1, NF do
    local x, o = v[i] or nil, old[i]
    if x ~= o then
      if type(x) == 'number' then x = int_s(x) end
      if LONG_AT[i] then
        put_long(set, del, FIELDS[i], x or '', o)
      elseif x == nil then
        del[#del + 1] = FIELDS[i]
      elseif x ~= o then
        set[#set + 1] = FIELDS[i]
        set[#set + 1] = x
      end
    end
  end
  write_fields(k, set, del)
end

-- ev_status is the status of an event's values: a new event stores none
-- (bytes per pending event is a design target), and is PENDING.
local function ev_status(v)
  return v[I.status] or 'PENDING'
end

-- status_of returns the status of event k, or false when it does not exist.
local function status_of(k)
  local ev = ev_load(k)
  if not ev then return false end
  return ev_status(ev.v)
end

-- append_event appends event k (record ev) to the reply list res: the
-- values of FIELDS in order, false where a field is absent, the form
-- decodeValues in store/redisstore/codec.go reads.
local function append_event(res, k, ev)
  local v = ev_full(k, ev)
  for i = 1, NF do res[#res + 1] = v[i] or false end
  return res
end

-- xadd_final appends a 'final' outbox entry for an event: m, k 'final', c
-- (the run), t (the finish time, also its updated time), s, h (the attempt
-- that ended it) and the field, value pairs of extra, what the caller
-- changed with the outcome (a, lc, le, d: attempts, last status code, last
-- error, due time). The event itself stays in Redis, which keeps it (and
-- its body) until the entry is archived (archived.lua): the archiver reads
-- the events of a batch's final entries in one pipeline (withEvents in
-- store/redisstore/outbox.go), and the carried fields say how the run ended
-- should the event have changed since (a retry started a new run). The
-- finish copies nothing: no packing, a short entry.
local function xadd_final(stream, member, created, now, status, line, extra)
  local entry = {stream, '*', 'm', member, 'k', 'final', 'c', created or '', 't', now, 's', status,
    'h', line or ''}
  if extra then
    for i = 1, #extra, 2 do
      if extra[i + 1] then
        entry[#entry + 1] = extra[i]
        entry[#entry + 1] = extra[i + 1]
      end
    end
  end
  redis.call('XADD', unpack(entry))
end

-- Packed outbox entries (a namespace of layout 3: store/redisstore/outbox.go
-- reads them). A batch script gathers the records of its creates, or of
-- its final outcomes, in a list per outbox stream (pack) and writes them
-- as entries of up to PACK_MAX records each at the end (xadd_packed): 'k'
-- 'creates' or 'finals', 'n' the number of records, 'e' the records, each
-- a run of lines:
--   create: member; "<created> <due> <method> <flow key> <url>" (the
--           method '' for POST, the flow key '' for none; the url is the
--           rest of its line)
--   final:  member; "<created> <finish time> <status> <attempts> <last
--           status code> <due>" ('' for a value that is not there); the
--           history line of the attempt that ended it; the last error
-- One XADD and one entry to read and acknowledge per batch instead of per
-- event (measured on redis-server 7.0: 1.9-2.1 µs to add an entry of a
-- create and 2.5-2.7 to read and acknowledge it, against 1.0-1.1 and 0.5
-- for its record in a packed entry). A record whose member, url, history
-- line or error holds a line break gets an entry of its own instead.
local PACK_MAX = 64

-- packable tells whether strings a, b and c (nil: none) hold no line break.
local function packable(a, b, c)
  return not string.find(a, '\n', 1, true) and not (b and string.find(b, '\n', 1, true))
    and not (c and string.find(c, '\n', 1, true))
end

-- xadd_packed writes the records gathered in pack to stream out as
-- entries of kind ('creates' or 'finals'), PACK_MAX records at most each.
local function xadd_packed(out, kind, pack)
  for i = 1, #pack, PACK_MAX do
    local j = math.min(i + PACK_MAX - 1, #pack)
    redis.call('XADD', out, '*', 'k', kind, 'n', int_s(j - i + 1), 'e', table.concat(pack, '', i, j))
  end
end

-- error_of is the reply for an error a batch script caught with pcall (to
-- write what it did before it: xadd_packed), with its code: a command's
-- error (OOM, READONLY, ...) reaches pcall as a string, which re-raised
-- would come back as ERR.
local function error_of(err)
  if type(err) == 'table' then return err end
  err = tostring(err)
  if not string.find(err, '^%u[%u_]* ') then err = 'ERR ' .. err end
  return redis.error_reply(err)
end

-- pack_final adds the record of a final outcome to pack (see xadd_final
-- for the values) and returns true, or returns false when it cannot be
-- packed (the caller writes an entry of its own).
local function pack_final(pack, member, created, now, status, line, a, lc, le, d)
  line, le = line or '', le or ''
  if not packable(member, line, le) then return false end
  pack[#pack + 1] = member .. '\n' .. (created or '') .. ' ' .. now .. ' ' .. status .. ' ' .. (a or '') .. ' ' ..
    (lc or '') .. ' ' .. (d or '') .. '\n' .. line .. '\n' .. le .. '\n'
  return true
end

-- record_final records a final outcome in stream out: its record in pack
-- when there is one and the record can be packed, else an entry of its own
-- (xadd_final, with a, lc, le and d as its extra fields).
local function record_final(out, pack, member, created, now, status, line, a, lc, le, d)
  if pack and pack_final(pack, member, created, now, status, line, a, lc, le, d) then return end
  -- false, not nil, for a value that is not there: no hole in the list.
  xadd_final(out, member, created, now, status, line, {'a', a or false, 'lc', lc or false, 'le', le or false,
    'd', d or false})
end

-- stale_line is a history line marked "stale":true (scheduler.Attempt.Stale).
local function stale_line(line)
  if line == '{}' then return '{"stale":true}' end
  if string.sub(line, -1) == '}' then return string.sub(line, 1, -2) .. ',"stale":true}' end
  return line
end

-- seen_line looks for a finish's history line in history hist: dup is
-- true when the call was applied before (the line is there as recorded,
-- held true, or marked stale, held false); else it returns the line's
-- stale form when it built it.
local function seen_line(hist, line)
  if hist == '' then return false end -- a first attempt, the usual case
  local lines = '\n' .. hist
  if string.find(lines, '\n' .. line .. '\n', 1, true) then return true, true end
  local stale = stale_line(line)
  if string.find(lines, '\n' .. stale .. '\n', 1, true) then return true, false end
  return false, nil, stale
end

-- finish_attempt checks the caller's lease on compact event k, whose record
-- ev (ev_from) it is given (nil: gone): worker and attempt number must
-- match a PROCESSING event. A late attempt joins the history marked stale
-- (scheduler.Attempt.Stale): it was delivered, but its outcome does not
-- count; it goes to the outbox as an 'attempt' entry leaving the run as it
-- is.
--
-- Finishing is idempotent per attempt: a call whose line is already in the
-- history (as recorded, or marked stale) was applied before and changes
-- nothing. That is a call sent again: go-redis retries a pipeline whose
-- replies were lost, the finisher re-runs a call after NOSCRIPT, a worker
-- retries after an error. The line names the worker and the attempt number
-- and carries the attempt's time, so it identifies one delivery even when a
-- claim given back unused (giveback.lua) lets an attempt number come again.
--
-- Returns held (true, false, or nil when the event is gone) and dup (true
-- when the call was applied before: held then says how it counted). When
-- held, the caller records the outcome and the line in ev (one ev_save); a
-- stale line is written here. finish_attempt_hash does the same for a hash.
local function finish_attempt(ev, k, stream, member, worker, attempt, line)
  if not ev then return nil, false end
  local v = ev.v
  local hist = v[I.history] or ''
  local dup, held, stale = seen_line(hist, line)
  if dup then return held, true end
  if ev_status(v) == 'PROCESSING' and v[I.worker] == worker and v[I.attempts] == attempt then
    return true, false
  end
  stale = stale or stale_line(line)
  v[I.history] = hist .. stale .. '\n'
  ev_save(k, ev)
  redis.call('XADD', stream, '*', 'm', member, 'k', 'attempt', 'c', v[I.created_at] or '', 't', v[I.updated_at] or '',
    's', ev_status(v), 'h', stale)
  return false, false
end

-- finish_attempt_hash is finish_attempt for an event hash (layout 1), as
-- it was before compact events: one HMGET reads what it needs. Returns
-- held and dup, the hash's s, w, a, c, t, hi, hi1, le, le1, d, the line as
-- recorded, and, when held, the new history and the old one: the caller
-- writes it with the outcome (one HSET, put_long).
local function finish_attempt_hash(k, stream, member, worker, attempt, line)
  local cur = redis.call('HMGET', k, F.status, F.worker, F.attempts, F.created_at, F.updated_at,
    F.history, F.history .. '1', F.last_error, F.last_error .. '1', F.due_at)
  cur[1] = cur[1] or 'PENDING' -- as created: see ev_status
  local hist = long_join(k, F.history, cur[6], cur[7]) or ''
  local dup, held, stale = seen_line(hist, line)
  if dup then return held, true, cur end
  if cur[1] == 'PROCESSING' and cur[2] == worker and cur[3] == attempt then
    return true, false, cur, hist .. line .. '\n', hist
  end
  stale = stale or stale_line(line)
  local set, del = {}, {}
  put_long(set, del, F.history, hist .. stale .. '\n', hist)
  write_fields(k, set, del)
  redis.call('XADD', stream, '*', 'm', member, 'k', 'attempt', 'c', cur[4] or '', 't', cur[5] or '',
    's', cur[1], 'h', stale)
  return false, false, cur
end

-- ack_event records the final outcome (COMPLETED, FAILED or
-- SERVICE_UNAVAILABLE) of a delivery attempt of event k (layout: the
-- namespace's, see ev_get), member m, under the lease of worker and attempt
-- (the attempt number it claimed):
-- ended is a list the caller removes from the shard's lease zset in one
-- command once the batch is done (the member is added once the outcome is
-- written, so that a write Redis refuses, out of memory, keeps the lease; a worker keeps no list of what it holds: see claim.lua), out the
-- outbox;
-- code is the last status code ('' when none), err the last error, line the
-- attempt's history line (JSON; finish_attempt marks it "stale":true when
-- the caller no longer holds the lease), now in ms; pack, when given, the
-- list the caller gathers packed final records of out in (xadd_packed);
-- pre and post, the compact fields the outcome appends before its times
-- (status, last status code) and after them (history line, last error),
-- as compact_field writes them: the caller made them, which spares the
-- script building them field by field (measured: a fifth of a finish's
-- CPU in Redis); '' and '' when it did not.
--
-- Appends to the outbox a 'final' entry, or its record to pack (the event
-- stays in Redis, see xadd_final), or, for a stale attempt, an 'attempt'
-- entry. The event gets
-- no expiry here and keeps its body: once the outcome is safely archived
-- the archiver sets the expiry and drops a COMPLETED event's body
-- (archived.lua). A compact event still ending with the caller's lease tail
-- (the usual case) is finished by appending to it, without decoding it.
--
-- Returns 1 when recorded, 0 when the caller no longer holds the lease (the
-- event was recovered and claimed again, cancelled or finished): the attempt
-- is then only appended to the history, the newer outcome stands. A call
-- applied before (the same history line: see finish_attempt) changes
-- nothing and returns what the first one did.
local TIMES = {} -- the compact update and finish time fields of a time
local function ack_event(k, layout, ended, out, m, worker, attempt, status, code, err, line, now, pack, pre, post)
  local raw = ev_get(k, layout)
  if raw == HASH then
    local held, dup, cur, hist, old_hist = finish_attempt_hash(k, out, m, worker, attempt, line)
    if dup then return held and 1 or 0 end
    if not held then return 0 end
    local now_s = int_s(now)
    local set, del = {F.status, status, F.last_status_code, code, F.updated_at, now_s, F.finished_at, now_s}, {}
    put_long(set, del, F.history, hist, old_hist)
    put_long(set, del, F.last_error, err, long_join(k, F.last_error, cur[8], cur[9]))
    write_fields(k, set, del)
    ended[#ended + 1] = m
    record_final(out, pack, m, cur[4], now_s, status, line, cur[3], code, err, cur[10])
    return 1
  end
  if raw then
    local tail, req, st = lease_tail(worker, attempt), nil, nil
    if ends_with(raw, tail) then req, st = compact_sections(k, raw) end
    -- Nothing changed the event since this worker's claim of this attempt
    -- (its lease tail is last), so the worker holds the lease. This call
    -- was not applied before unless its line is in the history already:
    -- the same worker can claim the same attempt number again (a requeue
    -- that resets attempts; park, recheck and giveback take one back), and
    -- a call for the earlier one sent again must not count for this one.
    -- The line is looked for as recorded or marked stale (without its
    -- closing brace: stale_line), in the state section; a match of
    -- something else only costs the slow path. The usual case, read where
    -- it is: the creation and due times for the outbox.
    if st and not string.find(raw, string.sub(line, 1, -2), st, true) then
      local created, due = compact_first(k, raw, req, I.created_at), compact_first(k, raw, st, I.due_at)
      local now_s = int_s(now)
      if pre ~= '' and post ~= '' then
        local times = TIMES[now_s]
        if not times then
          local o = {}
          compact_field(o, I.updated_at, now_s)
          compact_field(o, I.finished_at, now_s)
          times = table.concat(o)
          TIMES[now_s] = times
        end
        redis.call('APPEND', k, pre .. times .. post)
      else
        local o = {}
        compact_field(o, I.status, status)
        compact_field(o, I.last_status_code, code)
        compact_field(o, I.updated_at, now_s)
        compact_field(o, I.finished_at, now_s)
        compact_field(o, I.history, line .. '\n')
        compact_field(o, I.last_error, err)
        redis.call('APPEND', k, table.concat(o))
      end
      ended[#ended + 1] = m
      record_final(out, pack, m, created, now_s, status, line, attempt, code, err, due)
      return 1
    end
  end
  local ev = ev_from(k, raw)
  local held, dup = finish_attempt(ev, k, out, m, worker, attempt, line)
  if dup then return held and 1 or 0 end
  if not held then return 0 end
  local v, now_s = ev.v, int_s(now)
  local attempts, due = v[I.attempts], v[I.due_at]
  v[I.status], v[I.last_status_code], v[I.updated_at], v[I.finished_at] = status, code, now_s, now_s
  v[I.history] = (v[I.history] or '') .. line .. '\n'
  v[I.last_error] = err
  ev_save(k, ev)
  ended[#ended + 1] = m
  record_final(out, pack, m, v[I.created_at], now_s, status, line, attempts, code, err, due)
  return 1
end

-- publish_wake publishes a wake-up: with SPUBLISH on a shard's own channel
-- (its name has the shard's hash tag: a Redis Cluster with sharded pub/sub,
-- where only the master running the script carries it), else with PUBLISH
-- (the namespace's one channel, which has no braces: namespaces cannot).
local function publish_wake(channel, msg)
  if string.find(channel, '}', 1, true) then
    redis.call('SPUBLISH', channel, msg)
  else
    redis.call('PUBLISH', channel, msg)
  end
end

-- zadd_wake adds member to due set key at due and, when that moves the set's
-- earliest due time forward and within the horizon (ms from now), publishes
-- a wake-up so sleeping workers re-plan.
local function zadd_wake(key, due, member, now, horizon, channel, msg)
  local first = redis.call('ZRANGE', key, '0', '0', 'WITHSCORES')
  redis.call('ZADD', key, int_s(due), member)
  if (first[2] == nil or due < tonumber(first[2])) and due - now < tonumber(horizon) then
    publish_wake(channel, msg)
  end
end


-- retry_event: a retryable attempt of event k (member m) failed and
-- attempts remain: back to PENDING, due again backoff ms after now, in the
-- shard's due zset due_key (a wake-up on channel with msg when that moves
-- its earliest due time forward within horizon ms). The other arguments
-- are ack_event's. Appends an 'attempt' entry to the outbox.
--
-- Returns the next due time in ms, or 0 when the caller no longer holds the
-- lease. A call applied before (the same history line: see finish_attempt)
-- changes nothing and returns 1 when the first one was recorded, else 0.
local function retry_event(k, layout, ended, out, due_key, m, worker, attempt, backoff, code, err, line,
    now, channel, msg, horizon)
  local raw = ev_get(k, layout)
  if raw == HASH then
    local held, dup, cur, hist, old_hist = finish_attempt_hash(k, out, m, worker, attempt, line)
    if dup then return held and 1 or 0 end
    if not held then return 0 end
    local due = now + tonumber(backoff)
    redis.call('XADD', out, '*', 'm', m, 'k', 'attempt', 'c', cur[4] or '', 't', now,
      's', 'PENDING', 'd', due, 'h', line)
    local set, del = {F.status, 'PENDING', F.due_at, due, F.last_status_code, code, F.updated_at, now}, {F.worker}
    put_long(set, del, F.history, hist, old_hist)
    put_long(set, del, F.last_error, err, long_join(k, F.last_error, cur[8], cur[9]))
    write_fields(k, set, del)
    ended[#ended + 1] = m
    zadd_wake(due_key, due, m, now, horizon, channel, msg)
    return due
  end
  local ev = ev_from(k, raw)
  local held, dup = finish_attempt(ev, k, out, m, worker, attempt, line)
  if dup then return held and 1 or 0 end
  if not held then return 0 end
  local v = ev.v
  local due = now + tonumber(backoff)
  redis.call('XADD', out, '*', 'm', m, 'k', 'attempt', 'c', v[I.created_at] or '', 't', int_s(now),
    's', 'PENDING', 'd', int_s(due), 'h', line)
  v[I.status], v[I.due_at], v[I.last_status_code], v[I.updated_at], v[I.worker] = 'PENDING', due, code, now, false
  v[I.history] = (v[I.history] or '') .. line .. '\n'
  v[I.last_error] = err
  ev_save(k, ev)
  ended[#ended + 1] = m
  zadd_wake(due_key, due, m, now, horizon, channel, msg)
  return due
end

-- add_event writes new event k and its outbox 'create' entry (m, k
-- 'create', c, u, d, me only when the method is not POST, fk only when the
-- event has a flow key; its update time is c and its status PENDING, which
-- the reader fills in: every field left out is less for Redis to write,
-- read and send) to stream out; due is the due time's string as the caller
-- sent it. argv[from..to] is the event as the namespace's layout has it
-- (codec.go): one compact value (layout 2), or the field, value pairs of
-- its hash (layout 1: long values already in chunks, no status). A
-- compact value is written with SET NX, which looks for an event k (in
-- either layout) in the same command: add_event then returns false and
-- writes nothing when there is one. For a hash the caller looks first.
-- The caller adds the event to the due set. With pack, the list a batch
-- gathers packed create records in (xadd_packed), the entry is a record
-- there unless it cannot be packed.
local function add_event(k, out, m, due, created, url, method, fk, argv, from, to, pack)
  if from == to then
    if not redis.call('SET', k, argv[from], 'NX') then return false end
  else
    redis.call('HSET', k, unpack(argv, from, to))
  end
  if pack and packable(m, url) then
    if method == 'POST' then method = '' end
    pack[#pack + 1] = m .. '\n' .. created .. ' ' .. due .. ' ' .. method .. ' ' .. fk .. ' ' .. url .. '\n'
    return true
  end
  local entry = {out, '*', 'm', m, 'k', 'create', 'c', created, 'u', url, 'd', due}
  if method ~= 'POST' and method ~= '' then
    entry[#entry + 1] = 'me'
    entry[#entry + 1] = method
  end
  if fk ~= '' then
    entry[#entry + 1] = 'fk'
    entry[#entry + 1] = fk
  end
  redis.call('XADD', unpack(entry))
  return true
end

-- create_event writes a new event and its outbox 'create' entry: the body
-- of schedule.lua, whose KEYS and ARGV it takes (see there; a hash's
-- caller has looked for an existing event, see add_event). Returns {1}, or
-- {0, the existing event as append_event gives it} when there is one.
local function create_event(keys, argv)
  if not add_event(keys[1], keys[3], argv[1], argv[2], argv[7], argv[8], argv[9], argv[10], argv, 11, #argv) then
    return append_event({0}, keys[1], ev_load(keys[1]))
  end
  zadd_wake(keys[2], tonumber(argv[2]), argv[1], now_ms(argv[5]), argv[6], argv[3], argv[4])
  return {1}
end
