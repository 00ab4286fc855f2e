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

-- F names the fields of an event hash, FIELDS lists them in the codec's
-- order: the order in which scripts return an event (event_values). Both
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

-- Long values of an event hash (url u, headers h, body b, history hi, plan pl, last
-- error le, callback urls cb and fcb) are stored in chunks of at most CHUNK bytes: field f holds the
-- first, f..'1', f..'2', ... the next ones, so the hash of an ordinary event
-- stays listpack-encoded on a default Redis (hash-max-listpack-value 64).
-- A value longer than CHUNK * MAX_CHUNKS is stored whole in f. Readers join
-- f, f..'1', ... up to the first missing chunk, so values stored whole read
-- as before; writers delete the chunks an older, longer value left. The Go
-- side (store/redisstore/chunks.go) uses the same layout and constants.
local CHUNK, MAX_CHUNKS = 64, 16
local LONG = {F.url, F.headers, F.body, F.history, F.last_error, F.plan, F.callback_url,
  F.failure_callback_url}

local function chunk_field(f, i)
  if i == 0 then return f end
  return f .. i
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

-- values_of returns the fields of event hash k that list (FIELDS) names, in its order, as the codec decodes them: long values joined, false
-- (a nil reply) where a field is absent. One HMGET reads every field and the
-- second chunk of each long one. Its second result gives a field's position
-- in the first.
local ASK = {} -- list → {fields and second chunks to ask for, position of each field}
local function values_of(k, list)
  local q = ASK[list]
  if not q then
    -- Once per script call and list, not once per event (a claim returns up
    -- to a batch of them).
    local ask, at, long = {}, {}, {}
    for i, f in ipairs(list) do ask[i] = f; at[f] = i end
    for _, f in ipairs(LONG) do
      if at[f] then ask[#ask + 1] = f .. '1'; long[#long + 1] = f end
    end
    q = {ask = ask, at = at, long = long}
    ASK[list] = q
  end
  local v = redis.call('HMGET', k, unpack(q.ask))
  local out = {}
  for i = 1, #list do out[i] = v[i] end
  for j, f in ipairs(q.long) do
    out[q.at[f]] = long_join(k, f, v[q.at[f]], v[#list + j])
  end
  return out, q.at
end

-- event_values returns event hash k as the codec decodes it (decodeValues
-- in store/redisstore/codec.go): the values of FIELDS in order.
local function event_values(k)
  return values_of(k, FIELDS)
end

-- append_event appends event_values(k) to the reply list res.
local function append_event(res, k)
  for _, v in ipairs(event_values(k)) do res[#res + 1] = v end
  return res
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

-- long_get returns field f of hash k with its chunks joined (false when absent).
local function long_get(k, f)
  local v = redis.call('HMGET', k, f, f .. '1')
  return long_join(k, f, v[1], v[2])
end

-- long_trim deletes the chunks of field f from chunk n on (n = 0: all of it).
local function long_trim(k, f, n)
  while redis.call('HDEL', k, chunk_field(f, n)) == 1 do n = n + 1 end
end

-- long_set stores v in field f of hash k and deletes the old value's extra chunks.
local function long_set(k, f, v)
  local n = 1
  if #v > CHUNK and #v <= CHUNK * MAX_CHUNKS then n = math.ceil(#v / CHUNK) end
  local args = {}
  if n == 1 then
    args = {f, v}
  else
    for i = 0, n - 1 do
      args[#args + 1] = chunk_field(f, i)
      args[#args + 1] = string.sub(v, i * CHUNK + 1, (i + 1) * CHUNK)
    end
  end
  redis.call('HSET', k, unpack(args))
  long_trim(k, f, n)
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

-- status_of returns the status of event hash k, or false when it does not
-- exist. schedule.lua leaves the status out of a new event (bytes per
-- pending event is a design target): a hash without one is PENDING.
local function status_of(k)
  local s = redis.call('HGET', k, F.status)
  if s then return s end
  if redis.call('EXISTS', k) == 1 then return 'PENDING' end
  return false
end

-- xadd_final appends a 'final' outbox entry for an event: m, k 'final', c
-- (the run), t (the finish time, also its updated time), s, h (the attempt
-- that ended it) and the field, value pairs of extra, what the caller
-- changed with the outcome (a, lc, le, d: attempts, last status code, last
-- error, due time). The event itself stays in its hash, which keeps it (and
-- its body) until the entry is archived (archived.lua): the archiver reads
-- the hashes of a batch's final entries in one pipeline (withHashes in
-- store/redisstore/outbox.go), and the carried fields say how the run ended
-- should the hash have changed since (a retry started a new run). The
-- finish copies nothing: no HGETALL, no packing, a short entry.
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

-- stale_line is a history line marked "stale":true (scheduler.Attempt.Stale).
local function stale_line(line)
  if line == '{}' then return '{"stale":true}' end
  if string.sub(line, -1) == '}' then return string.sub(line, 1, -2) .. ',"stale":true}' end
  return line
end

-- finish_attempt checks the caller's lease on event hash k (worker and
-- attempt number must match a PROCESSING event) and appends the attempt's
-- history line. A late attempt joins the history marked stale
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
-- Returns held (true, false, or nil when the event is gone), dup (true when
-- the call was applied before: held then says how it counted), the hash's
-- s, w, a, c, t, hi, hi1, le, le1, d (one HMGET), the line as recorded, and,
-- when held, the new history and the old one: the caller writes it with the
-- outcome (one HSET, put_long) — a stale line is written here.
local function finish_attempt(k, stream, member, worker, attempt, line)
  local cur = redis.call('HMGET', k, F.status, F.worker, F.attempts, F.created_at, F.updated_at,
    F.history, F.history .. '1', F.last_error, F.last_error .. '1', F.due_at)
  if cur[1] == false then
    if not cur[4] and redis.call('EXISTS', k) == 0 then return nil, false, cur, line end
    cur[1] = 'PENDING' -- as created: see status_of
  end
  local hist = long_join(k, F.history, cur[6], cur[7]) or ''
  local stale = nil
  -- An empty history (a first attempt: the usual case) holds no line:
  -- neither string is built then.
  if hist ~= '' then
    local lines = '\n' .. hist
    if string.find(lines, '\n' .. line .. '\n', 1, true) then return true, true, cur, line end
    stale = stale_line(line)
    if string.find(lines, '\n' .. stale .. '\n', 1, true) then return false, true, cur, stale end
  end
  local held = cur[1] == 'PROCESSING' and cur[2] == worker and cur[3] == attempt
  if held then return true, false, cur, line, hist .. line .. '\n', hist end
  stale = stale or stale_line(line)
  long_set(k, F.history, hist .. stale .. '\n')
  redis.call('XADD', stream, '*', 'm', member, 'k', 'attempt', 'c', cur[4] or '', 't', cur[5] or '',
    's', cur[1], 'h', stale)
  return false, false, cur, stale
end

-- ack_event records the final outcome (COMPLETED, FAILED or
-- SERVICE_UNAVAILABLE) of a delivery attempt of event hash k, member m,
-- under the lease of worker and attempt (the attempt number it claimed):
-- ended is a list the caller removes from the shard's lease zset in one
-- command once the batch is done (the member is added when its lease ends
-- here), proc the worker's list, out the outbox;
-- code is the last status code ('' when none), err the last error, line the
-- attempt's history line (JSON; finish_attempt marks it "stale":true when
-- the caller no longer holds the lease), now in ms.
--
-- Appends to the outbox a 'final' entry (the event stays in its hash, see
-- xadd_final), or, for a stale attempt, an 'attempt' entry. The hash gets
-- no expiry here and keeps its body: once the outcome is safely archived
-- the archiver sets the expiry and drops a COMPLETED event's body
-- (archived.lua).
--
-- Returns 1 when recorded, 0 when the caller no longer holds the lease (the
-- event was recovered and claimed again, cancelled or finished): the attempt
-- is then only appended to the history, the newer outcome stands. A call
-- applied before (the same history line: see finish_attempt) changes
-- nothing and returns what the first one did.
local function ack_event(k, ended, proc, out, m, worker, attempt, status, code, err, line, now)
  local held, dup, cur, _, hist, old_hist = finish_attempt(k, out, m, worker, attempt, line)
  if dup then return held and 1 or 0 end
  if not held then return 0 end
  ended[#ended + 1] = m
  redis.call('LREM', proc, 1, m)
  local now_s = int_s(now)
  local set, del = {F.status, status, F.last_status_code, code, F.updated_at, now_s, F.finished_at, now_s}, {}
  put_long(set, del, F.history, hist, old_hist)
  put_long(set, del, F.last_error, err, long_join(k, F.last_error, cur[8], cur[9]))
  write_fields(k, set, del)
  xadd_final(out, m, cur[4], now_s, status, line, {'a', cur[3], 'lc', code, 'le', err, 'd', cur[10]})
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
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  redis.call('ZADD', key, due, member)
  if (first[2] == nil or due < tonumber(first[2])) and due - now < tonumber(horizon) then
    publish_wake(channel, msg)
  end
end


-- retry_event: a retryable attempt of event hash k (member m) failed and
-- attempts remain: back to PENDING, due again backoff ms after now, in the
-- shard's due zset due_key (a wake-up on channel with msg when that moves
-- its earliest due time forward within horizon ms). The other arguments
-- are ack_event's. Appends an 'attempt' entry to the outbox.
--
-- Returns the next due time in ms, or 0 when the caller no longer holds the
-- lease. A call applied before (the same history line: see finish_attempt)
-- changes nothing and returns 1 when the first one was recorded, else 0.
local function retry_event(k, ended, proc, out, due_key, m, worker, attempt, backoff, code, err, line, now,
    channel, msg, horizon)
  local held, dup, cur, _, hist, old_hist = finish_attempt(k, out, m, worker, attempt, line)
  if dup then return held and 1 or 0 end
  if not held then return 0 end
  local due = now + tonumber(backoff)
  redis.call('XADD', out, '*', 'm', m, 'k', 'attempt', 'c', cur[4] or '', 't', now,
    's', 'PENDING', 'd', due, 'h', line)
  ended[#ended + 1] = m
  redis.call('LREM', proc, 1, m)
  local set, del = {F.status, 'PENDING', F.due_at, due, F.last_status_code, code, F.updated_at, now}, {F.worker}
  put_long(set, del, F.history, hist, old_hist)
  put_long(set, del, F.last_error, err, long_join(k, F.last_error, cur[8], cur[9]))
  write_fields(k, set, del)
  zadd_wake(due_key, due, m, now, horizon, channel, msg)
  return due
end

-- add_event writes new event hash k (the field, value pairs argv[from..to])
-- and its outbox 'create' entry (m, k 'create', c, u, d, me only when the
-- method is not POST, fk only when the event has a flow key; its update
-- time is c and its status PENDING, which the reader fills in: every field
-- left out is less for Redis to write, read and send) to stream out; due is
-- the due time's string as the caller sent it. The caller adds the event to
-- the due set.
local function add_event(k, out, m, due, created, url, method, fk, argv, from, to)
  redis.call('HSET', k, unpack(argv, from, to))
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
end

-- create_event writes a new event and its outbox 'create' entry: the body
-- of schedule.lua, whose KEYS and ARGV it takes (see there). Returns {1}.
local function create_event(keys, argv)
  local now = now_ms(argv[5])
  local due = tonumber(argv[2])
  add_event(keys[1], keys[3], argv[1], argv[2], argv[7], argv[8], argv[9], argv[10], argv, 11, #argv)
  zadd_wake(keys[2], due, argv[1], now, argv[6], argv[3], argv[4])
  return {1}
end
