-- 0003: the ledger of `cassata import` (package store/legacy owns this table
-- and its queries). One row per identity brought over from an original
-- Cassata database: a second run skips what it lists, so an event imported
-- live, delivered and long gone from Redis is never scheduled again.
--
-- state: 'creating' is written before the live create (write-ahead), so a
-- run interrupted between the create and its confirmation checks Cassata
-- for the event instead of guessing; then 'live' or 'archived'.

CREATE TABLE IF NOT EXISTS legacy_imports (
    app           TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    source_id     INTEGER NOT NULL,
    source_status TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (app, event_id)
);
