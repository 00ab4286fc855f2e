-- finishmany.lua: record the outcomes of a batch of delivery attempts of
-- one shard: ack.lua (final outcomes) and retry.lua (retryable failures)
-- for many events in one call, which saves a script call per delivery (the
-- worker's finisher batches its outcomes).
--
-- KEYS[1] lease zset   <P>:lease
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] event key prefix       <P>:ev: (same hash tag as KEYS)
-- ARGV[2] wake-up channel
-- ARGV[3] wake-up message (the shard number)
-- ARGV[4] wake horizon, ms
-- ARGV[5] the namespace's event layout, '1' or '2' (ev_get in prelude.lua)
-- ARGV[6..] 9 values per outcome: 'ack' or 'retry', member, worker id,
--          attempt number the worker claimed, final status (ack) or backoff
--          in ms (retry), last status code ('' when none), last error,
--          history line, now in ms (0: use the Redis server clock)
--
-- Each outcome is applied as its own script would, in order, and is as
-- idempotent (finish_attempt): a batch sent again changes nothing. The
-- leases that end leave the lease zset in one command.
--
-- Returns one value per outcome: what ack.lua or retry.lua returns for it.
local res, ended, now = {}, {}, nil
for i = 6, #ARGV, 9 do
  local op, m, worker = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- The server's clock is read once per call: the batch is applied at one instant.
  local t = tonumber(ARGV[i + 8])
  if t == nil or t == 0 then
    now = now or now_ms(0)
    t = now
  end
  local k = ARGV[1] .. m
  if op == 'ack' then
    res[#res + 1] = ack_event(k, ARGV[5], ended, KEYS[3], m, worker, ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
      ARGV[i + 6], ARGV[i + 7], t)
  elseif op == 'retry' then
    res[#res + 1] = retry_event(k, ARGV[5], ended, KEYS[3], KEYS[2], m, worker, ARGV[i + 3], ARGV[i + 4],
      ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], t, ARGV[2], ARGV[3], ARGV[4])
  else
    res = redis.error_reply('finishmany: unknown operation ' .. tostring(op))
    break
  end
end
-- What the outcomes before a bad one did stands: their leases end too.
call_batched({'ZREM', KEYS[1]}, ended)
return res
