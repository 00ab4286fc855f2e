-- occreplace.lua: create an event, replacing a PENDING or CANCELLED one of
-- the same identity. A schedule edited without moving its next occurrence
-- replaces that occurrence's event, so the new template applies to it; a
-- head that comes back to an occurrence cancelled before (pause and resume
-- within one interval, an edit moving it away and back, a delete and the
-- same create again) makes it pending again, or the chain would end there.
--
-- KEYS, ARGV: as schedule.lua. ARGV[7] (created, ms) should be the replaced
-- event's: the archive keys a run by its creation time, so its row of the
-- replaced run is updated rather than left PENDING beside a new one.
--
-- Returns {1} when written, {0, the existing event as append_event gives
-- it} when the identity is held by an event that is neither PENDING nor
-- CANCELLED (claimed or run: it is left alone).
local ev = ev_load(KEYS[1])
if ev then
  local s = ev_status(ev.v)
  if s ~= 'PENDING' and s ~= 'CANCELLED' then
    return append_event({0}, KEYS[1], ev)
  end
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[1])
end
return create_event(KEYS, ARGV)
