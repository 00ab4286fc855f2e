-- 0001: the events table (one row per run of an identity) and the attempts
-- table (one row per delivery attempt). See doc.go for what each column
-- holds and why most of them are NULL until a record tells their value.
--
-- AUTOINCREMENT keeps seq strictly increasing and never reused, which the
-- keyset pagination relies on. Migrations run in one transaction on SQLite.

CREATE TABLE IF NOT EXISTS events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    app              TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    created_ms       INTEGER NOT NULL,
    url              TEXT    NULL,
    method           TEXT    NULL,
    headers          TEXT    NULL,
    body             BLOB    NULL,
    due_ms           INTEGER NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NULL,
    max_attempts     INTEGER NULL,
    timeout_ms       INTEGER NULL,
    min_backoff_ms   INTEGER NULL,
    max_backoff_ms   INTEGER NULL,
    last_status_code INTEGER NULL,
    last_error       TEXT    NULL,
    worker           TEXT    NULL,
    finished_ms      INTEGER NULL,
    updated_ms       INTEGER NOT NULL,
    UNIQUE (app, event_id, created_ms)
);

CREATE INDEX IF NOT EXISTS events_app_seq ON events (app, seq);
CREATE INDEX IF NOT EXISTS events_status_seq ON events (status, seq);
CREATE INDEX IF NOT EXISTS events_app_status_seq ON events (app, status, seq);
CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_due ON events (due_ms);

CREATE TABLE IF NOT EXISTS attempts (
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
    stale       INTEGER NOT NULL,
    -- Its prefix (app, event_id, created_ms) serves reading a run's history.
    UNIQUE (app, event_id, created_ms, attempt, at_ms, worker)
);
