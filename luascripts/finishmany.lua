-- finishmany.lua: record the outcomes of a batch of delivery attempts:
-- ack.lua (final outcomes) and retry.lua (retryable failures) for many
-- events in one call, which saves a script call per delivery (the worker's
-- finisher batches its outcomes). On a Redis Cluster a call holds one
-- shard's outcomes (its keys share a slot); on one Redis it holds every
-- shard's, so a batch is one call, not one per shard: what each call
-- costs before its first outcome (~4.5 µs of the prelude's functions made
-- again, the call's own overhead) is paid once.
--
-- KEYS per shard slot j = 1..S of the call, three each:
--   KEYS[3j-2] lease zset   <P>:lease
--   KEYS[3j-1] due zset     <P>:due
--   KEYS[3j]   outbox       <P>:out
-- ARGV[1] S, the number of shard slots
-- ARGV[2..] 3 values per slot j: its event key prefix <P>:ev: (same hash
--          tag as its KEYS), its wake-up channel, its wake-up message (the
--          shard number)
-- then     the wake horizon, ms, the namespace's event layout, '1' or
--          '2' (ev_get in prelude.lua), and '1' to write the final entries
--          of each shard packed (xadd_packed in prelude.lua; a namespace of
--          layout 3), else '0' (one per event)
-- then     12 values per outcome: its shard slot j, 'ack' or 'retry',
--          member, worker id, attempt number the worker claimed, final
--          status (ack) or backoff in ms (retry), last status code ('' when
--          none), last error, history line, now in ms (0: use the Redis
--          server clock), and for an ack the compact fields its outcome
--          appends to the event before its times and after them (ack_event
--          in prelude.lua; '' and '': the script writes them itself)
--
-- Each outcome is applied as its own script would, in order, and is as
-- idempotent (finish_attempt): a batch sent again changes nothing. The
-- leases that end leave each shard's lease zset in one command, and the
-- packed final records are written, at the end, also when an outcome
-- failed: what the outcomes before it did stands.
--
-- Returns one value per outcome: what ack.lua or retry.lua returns for it.
local S = tonumber(ARGV[1])
local horizon, layout, packed = ARGV[2 + 3 * S], ARGV[3 + 3 * S], ARGV[4 + 3 * S] == '1'
local res, ended, packs, now = {}, {}, {}, nil
for j = 1, S do
  ended[j] = {}
  if packed then packs[j] = {} end
end
local ok, err = pcall(function()
  for i = 5 + 3 * S, #ARGV, 12 do
    local j = tonumber(ARGV[i])
    local op, m, worker = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if not j or not ended[j] then
      res = redis.error_reply('finishmany: no shard slot ' .. tostring(ARGV[i]))
      break
    end
    -- The server's clock is read once per call: the batch is applied at one instant.
    local t = tonumber(ARGV[i + 9])
    if t == nil or t == 0 then
      now = now or now_ms(0)
      t = now
    end
    local a = 3 * j - 1 -- the slot's values in ARGV
    local k = ARGV[a] .. m
    if op == 'ack' then
      res[#res + 1] = ack_event(k, layout, ended[j], KEYS[3 * j], m, worker, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
        ARGV[i + 7], ARGV[i + 8], t, packs[j], ARGV[i + 10], ARGV[i + 11])
    elseif op == 'retry' then
      res[#res + 1] = retry_event(k, layout, ended[j], KEYS[3 * j], KEYS[3 * j - 1], m, worker, ARGV[i + 4],
        ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], t, ARGV[a + 1], ARGV[a + 2], horizon)
    else
      res = redis.error_reply('finishmany: unknown operation ' .. tostring(op))
      break
    end
  end
end)
-- What the outcomes before a bad one did stands: their leases end, and
-- their final records are written.
for j = 1, S do
  call_batched({'ZREM', KEYS[3 * j - 2]}, ended[j])
  if packed then xadd_packed(KEYS[3 * j], 'finals', packs[j]) end
end
if not ok then return error_of(err) end
return res
