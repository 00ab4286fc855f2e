-- 0005: fewer index entries per write (issue 17: the archiver's CPU).
--
-- events_event_id served no query: the q filter is "event_id LIKE 'p%' OR
-- url LIKE '%p%'", which scans whatever the index on event_id says, and
-- Get reads a run by its UNIQUE (app, event_id, created_ms).
--
-- The status indexes leave COMPLETED out. Nearly every run ends COMPLETED,
-- so indexing it moved two index entries per finished run (the PENDING
-- entry out, a COMPLETED one in) for a filter that needs no index: the
-- newest COMPLETED runs are the newest runs, and a scan of events by seq
-- finds a page of them at once. The statuses a search has to dig for
-- (FAILED, SERVICE_UNAVAILABLE, CANCELLED, PENDING) keep their index. A
-- query uses these indexes only when its WHERE has the same term
-- (status <> 'COMPLETED'); Search adds it when its status filter leaves
-- COMPLETED out, and Counts counts COMPLETED as the rest of all runs.
-- One transaction on SQLite: an archive never has half of this.

DROP INDEX IF EXISTS events_event_id;
DROP INDEX IF EXISTS events_status_seq;
DROP INDEX IF EXISTS events_app_status_seq;
CREATE INDEX IF NOT EXISTS events_status_seq ON events (status, seq) WHERE status <> 'COMPLETED';
CREATE INDEX IF NOT EXISTS events_app_status_seq ON events (app, status, seq) WHERE status <> 'COMPLETED';
