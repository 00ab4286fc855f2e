-- 0001: the events table (one row per run of an identity) and the attempts
-- table (one row per delivery attempt). See doc.go for what each column
-- holds and why most of them are NULL until a record tells their value.
--
-- Identities are ASCII (API.md §2) and compared byte for byte: ascii_bin
-- keeps keys short and makes id-prefix search case-sensitive. Text that
-- comes from destinations (errors, responses) is utf8mb4; the writer makes
-- it valid UTF-8 first. Indexes are declared inline because MySQL (unlike
-- MariaDB) has no CREATE INDEX IF NOT EXISTS, and every statement here must
-- be safe to run again after a crash half-way through the migration.

CREATE TABLE IF NOT EXISTS events (
    seq              BIGINT       NOT NULL AUTO_INCREMENT,
    app              VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_id         VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_ms       BIGINT       NOT NULL,
    url              MEDIUMTEXT   NULL,
    method           VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NULL,
    headers          MEDIUMTEXT   NULL,
    body             MEDIUMBLOB   NULL,
    due_ms           BIGINT       NULL,
    status           VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    attempts         INT          NULL,
    max_attempts     INT          NULL,
    timeout_ms       BIGINT       NULL,
    min_backoff_ms   BIGINT       NULL,
    max_backoff_ms   BIGINT       NULL,
    last_status_code INT          NULL,
    last_error       TEXT         NULL,
    worker           VARCHAR(255) NULL,
    finished_ms      BIGINT       NULL,
    updated_ms       BIGINT       NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY events_run (app, event_id, created_ms),
    KEY events_app_seq (app, seq),
    KEY events_status_seq (status, seq),
    KEY events_app_status_seq (app, status, seq),
    KEY events_event_id (event_id),
    KEY events_due (due_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS attempts (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    app         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_id    VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_ms  BIGINT       NOT NULL,
    attempt     INT          NOT NULL,
    at_ms       BIGINT       NOT NULL,
    duration_ms BIGINT       NOT NULL,
    status_code INT          NOT NULL,
    error       TEXT         NOT NULL,
    response    TEXT         NOT NULL,
    worker      VARCHAR(255) NOT NULL,
    stale       BOOLEAN      NOT NULL,
    PRIMARY KEY (id),
    -- Its prefix (app, event_id, created_ms) serves reading a run's history.
    UNIQUE KEY attempts_once (app, event_id, created_ms, attempt, at_ms, worker)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
