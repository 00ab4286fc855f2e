-- finishmany.lua: record the outcomes of a batch of delivery attempts of
-- one shard: ack.lua (final outcomes) and retry.lua (retryable failures)
-- for many events in one call, which saves a script call per delivery (the
-- worker's finisher batches its outcomes).
--
-- KEYS[1] lease zset   <P>:lease
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] event hash key prefix  <P>:ev: (same hash tag as KEYS)
-- ARGV[2] worker list key prefix <P>:proc:
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message (the shard number)
-- ARGV[5] wake horizon, ms
-- ARGV[6..] 9 values per outcome: 'ack' or 'retry', member, worker id,
--          attempt number the worker claimed, final status (ack) or backoff
--          in ms (retry), last status code ('' when none), last error,
--          history line, now in ms (0: use the Redis server clock)
--
-- Each outcome is applied as its own script would, in order, and is as
-- idempotent (finish_attempt): a batch sent again changes nothing.
--
-- Returns one value per outcome: what ack.lua or retry.lua returns for it.
local res = {}
for i = 6, #ARGV, 9 do
  local op, m, worker = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local k, proc, now = ARGV[1] .. m, ARGV[2] .. worker, now_ms(ARGV[i + 8])
  if op == 'ack' then
    res[#res + 1] = ack_event(k, KEYS[1], proc, KEYS[3], m, worker, ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
      ARGV[i + 6], ARGV[i + 7], now)
  elseif op == 'retry' then
    res[#res + 1] = retry_event(k, KEYS[1], proc, KEYS[3], KEYS[2], m, worker, ARGV[i + 3], ARGV[i + 4],
      ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], now, ARGV[3], ARGV[4], ARGV[5])
  else
    return redis.error_reply('finishmany: unknown operation ' .. tostring(op))
  end
end
return res
