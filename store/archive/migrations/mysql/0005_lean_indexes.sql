-- 0005: fewer index entries per write (issue 17: the archiver's CPU).
--
-- events_event_id served no query: the q filter is "event_id LIKE 'p%' OR
-- url LIKE '%p%'", which scans whatever the index on event_id says, and
-- Get reads a run by events_run (app, event_id, created_ms).
--
-- The status indexes stay whole here: MySQL and MariaDB have no partial
-- indexes (on SQLite they leave COMPLETED out, see its 0005).
--
-- MySQL has no DROP INDEX IF EXISTS: run again after it committed (a crash
-- before the version row), the statement fails with "check that it exists"
-- (1091), which Migrate takes as done (migrate.go).

ALTER TABLE events DROP INDEX events_event_id;
