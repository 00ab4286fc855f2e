-- 0005: fewer index entries per write (issue 17: the archiver's CPU).
--
-- events_event_id served no query: the q filter is "event_id LIKE 'p%' OR
-- url LIKE '%p%'", which scans whatever the index on event_id says, and
-- Get reads a run by events_run (app, event_id, created_ms).
--
-- The status indexes stay whole here: MySQL and MariaDB have no partial
-- indexes (on SQLite they leave COMPLETED out, see its 0005).
--
-- The attempts key (one row per attempt, which makes Write idempotent) has
-- the same columns, led by created_ms instead of app: a new attempt's key
-- then lands next to the other recent ones instead of at a random place
-- (event ids are the clients' own: UUIDs, order numbers). Reading a run's
-- history gives all of (app, event_id, created_ms), so any order of them
-- serves it. One statement: the key is never missing, and run again it
-- rebuilds the same key.
--
-- MySQL has no DROP INDEX IF EXISTS: run again after it committed (a crash
-- before the version row), the statement fails with "check that it exists"
-- (1091), which Migrate takes as done (migrate.go).

ALTER TABLE events DROP INDEX events_event_id;
ALTER TABLE attempts DROP INDEX attempts_once, ADD UNIQUE KEY attempts_once (created_ms, app, event_id, attempt, at_ms, worker);
