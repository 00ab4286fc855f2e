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
--
-- The attempts key (one row per attempt, which makes Write idempotent) has
-- the same columns, led by created_ms instead of app: a new attempt's key
-- then lands next to the other recent ones instead of at a random place
-- (event ids are the clients' own: UUIDs, order numbers), which spared a
-- page split and a page written per attempt. Reading a run's history gives
-- all of (app, event_id, created_ms), so any order of them serves it.
-- SQLite cannot change a table's UNIQUE constraint in place: the table is
-- copied into one with the new key (a named index, as on MySQL), ids kept.
--
-- One transaction on SQLite: an archive never has half of this.

DROP INDEX IF EXISTS events_event_id;
DROP INDEX IF EXISTS events_status_seq;
DROP INDEX IF EXISTS events_app_status_seq;
CREATE INDEX IF NOT EXISTS events_status_seq ON events (status, seq) WHERE status <> 'COMPLETED';
CREATE INDEX IF NOT EXISTS events_app_status_seq ON events (app, status, seq) WHERE status <> 'COMPLETED';

CREATE TABLE attempts_0005 (
    id          INTEGER PRIMARY KEY,
    app         TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    error       TEXT    NOT NULL,
    response    TEXT    NOT NULL,
    worker      TEXT    NOT NULL,
    stale       INTEGER NOT NULL
);
INSERT INTO attempts_0005 (id, app, event_id, created_ms, attempt, at_ms, duration_ms, status_code, error, response, worker, stale)
    SELECT id, app, event_id, created_ms, attempt, at_ms, duration_ms, status_code, error, response, worker, stale FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_0005 RENAME TO attempts;
CREATE UNIQUE INDEX attempts_once ON attempts (created_ms, app, event_id, attempt, at_ms, worker);
CREATE INDEX attempts_at ON attempts (at_ms);
