-- 0003: the ledger of `cassata import` (package store/legacy owns this table
-- and its queries). One row per identity brought over from an original
-- Cassata database: a second run skips what it lists, so an event imported
-- live, delivered and long gone from Redis is never scheduled again.
--
-- state: 'creating' is written before the live create (write-ahead), so a
-- run interrupted between the create and its confirmation checks Cassata
-- for the event instead of guessing; then 'live' or 'archived'.

CREATE TABLE IF NOT EXISTS legacy_imports (
    app           VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_id      VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    source_id     BIGINT       NOT NULL,
    source_status VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    state         VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    updated_ms    BIGINT       NOT NULL,
    PRIMARY KEY (app, event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
