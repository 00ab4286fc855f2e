-- schedule.lua: create an event unless its identity already exists.
--
-- KEYS[1] event        <P>:ev:<app>/<id>
-- KEYS[2] due zset     <P>:due
-- KEYS[3] outbox       <P>:out
-- ARGV[1] member       <app>/<id>
-- ARGV[2] due time, ms
-- ARGV[3] wake-up channel
-- ARGV[4] wake-up message (the shard number)
-- ARGV[5] now, ms (0: use the Redis server clock)
-- ARGV[6] wake horizon, ms: publish only when the event is due within it
-- ARGV[7] created, ms     } for the outbox entry, so the script need not
-- ARGV[8] url, whole      } read back what it writes (the event holds the
-- ARGV[9] method          } same values, chunked or left out as defaults)
-- ARGV[10] flow key       } ('' for none)
-- ARGV[11..] field, value pairs of the event's hash (codec.go encode: long
--          values already in chunks, see put_long; no status: an event
--          without one is PENDING, see ev_status), or, for a namespace
--          whose events are compact (layout 2, see prelude.lua), the
--          event's compact value alone
--
-- Appends a 'create' entry to the outbox (no body: the archive learns it
-- from the final entry), so live events are searchable in the archive:
-- m, k 'create', c, t, s 'PENDING', u, me, d, and fk when the event has a
-- flow key.
--
-- Returns {1} when created, {0, the existing event as append_event gives
-- it} when the identity is taken (the caller compares content for
-- idempotent replay).
if #ARGV > 11 then
  -- A hash's fields: look for the event first (a compact value's SET NX
  -- looks by itself, see add_event).
  local ev = ev_load(KEYS[1])
  if ev then
    return append_event({0}, KEYS[1], ev)
  end
end
return create_event(KEYS, ARGV)
