package archive

// Every SQL statement of the archive, per dialect where they differ. The
// multi-row inserts are a head, one "(?, ...)" group per row, and a tail.

const (
	createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)`
	selectMigrations = `SELECT version FROM schema_migrations`

	mysqlInsertMigration  = `INSERT IGNORE INTO schema_migrations (version, applied_at) VALUES (?, ?)`
	sqliteInsertMigration = `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?) ON CONFLICT DO NOTHING`
)

// eventColumns is the column list of the events upsert; eventRow.args
// returns the values in this order.
const eventColumns = `app, event_id, created_ms, url, method, headers, body, due_ms, status, attempts,
    max_attempts, timeout_ms, min_backoff_ms, max_backoff_ms, last_status_code, last_error, worker,
    finished_ms, updated_ms, flow_key`

const numEventColumns = 20

const upsertEventsHead = `INSERT INTO events (` + eventColumns + `) VALUES `

// createColumns is the column list of the narrow events upsert, for rows
// that tell only what a create record tells (createRow.appendArgs). The
// tail is the same: a column left out of the list is NULL in excluded (and
// VALUES() on MySQL), which the merge rule reads as "not told".
const createColumns = `app, event_id, created_ms, url, method, due_ms, status, attempts, updated_ms, flow_key`

const numCreateColumns = 10

const upsertCreatesHead = `INSERT INTO events (` + createColumns + `) VALUES `

// The merge rule (doc.go): a nullable column takes the incoming value when
// the record carries one (not NULL) and either the row has none yet or the
// record is at least as new as the row; status and finished_ms take the
// incoming value when the record is at least as new; updated_ms keeps the
// newest. MySQL evaluates the assignments left to right with the values
// already assigned, so updated_ms, which every other one reads, comes last.
const mysqlUpsertEventsTail = `
ON DUPLICATE KEY UPDATE
    url              = IF(VALUES(url)              IS NOT NULL AND (url              IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(url),              url),
    method           = IF(VALUES(method)           IS NOT NULL AND (method           IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(method),           method),
    headers          = IF(VALUES(headers)          IS NOT NULL AND (headers          IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(headers),          headers),
    body             = IF(VALUES(body)             IS NOT NULL AND (body             IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(body),             body),
    due_ms           = IF(VALUES(due_ms)           IS NOT NULL AND (due_ms           IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(due_ms),           due_ms),
    attempts         = IF(VALUES(attempts)         IS NOT NULL AND (attempts         IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(attempts),         attempts),
    max_attempts     = IF(VALUES(max_attempts)     IS NOT NULL AND (max_attempts     IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(max_attempts),     max_attempts),
    timeout_ms       = IF(VALUES(timeout_ms)       IS NOT NULL AND (timeout_ms       IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(timeout_ms),       timeout_ms),
    min_backoff_ms   = IF(VALUES(min_backoff_ms)   IS NOT NULL AND (min_backoff_ms   IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(min_backoff_ms),   min_backoff_ms),
    max_backoff_ms   = IF(VALUES(max_backoff_ms)   IS NOT NULL AND (max_backoff_ms   IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(max_backoff_ms),   max_backoff_ms),
    last_status_code = IF(VALUES(last_status_code) IS NOT NULL AND (last_status_code IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(last_status_code), last_status_code),
    last_error       = IF(VALUES(last_error)       IS NOT NULL AND (last_error       IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(last_error),       last_error),
    worker           = IF(VALUES(worker)           IS NOT NULL AND (worker           IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(worker),           worker),
    flow_key         = IF(VALUES(flow_key)         IS NOT NULL AND (flow_key         IS NULL OR VALUES(updated_ms) >= updated_ms), VALUES(flow_key),         flow_key),
    status           = IF(VALUES(updated_ms) >= updated_ms, VALUES(status),      status),
    finished_ms      = IF(VALUES(updated_ms) >= updated_ms, VALUES(finished_ms), finished_ms),
    updated_ms       = GREATEST(updated_ms, VALUES(updated_ms))`

// SQLite evaluates every SET expression against the old row, so order does
// not matter here.
const sqliteUpsertEventsTail = `
ON CONFLICT (app, event_id, created_ms) DO UPDATE SET
    url              = CASE WHEN excluded.url              IS NOT NULL AND (events.url              IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.url              ELSE events.url              END,
    method           = CASE WHEN excluded.method           IS NOT NULL AND (events.method           IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.method           ELSE events.method           END,
    headers          = CASE WHEN excluded.headers          IS NOT NULL AND (events.headers          IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.headers          ELSE events.headers          END,
    body             = CASE WHEN excluded.body             IS NOT NULL AND (events.body             IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.body             ELSE events.body             END,
    due_ms           = CASE WHEN excluded.due_ms           IS NOT NULL AND (events.due_ms           IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.due_ms           ELSE events.due_ms           END,
    attempts         = CASE WHEN excluded.attempts         IS NOT NULL AND (events.attempts         IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.attempts         ELSE events.attempts         END,
    max_attempts     = CASE WHEN excluded.max_attempts     IS NOT NULL AND (events.max_attempts     IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.max_attempts     ELSE events.max_attempts     END,
    timeout_ms       = CASE WHEN excluded.timeout_ms       IS NOT NULL AND (events.timeout_ms       IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.timeout_ms       ELSE events.timeout_ms       END,
    min_backoff_ms   = CASE WHEN excluded.min_backoff_ms   IS NOT NULL AND (events.min_backoff_ms   IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.min_backoff_ms   ELSE events.min_backoff_ms   END,
    max_backoff_ms   = CASE WHEN excluded.max_backoff_ms   IS NOT NULL AND (events.max_backoff_ms   IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.max_backoff_ms   ELSE events.max_backoff_ms   END,
    last_status_code = CASE WHEN excluded.last_status_code IS NOT NULL AND (events.last_status_code IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.last_status_code ELSE events.last_status_code END,
    last_error       = CASE WHEN excluded.last_error       IS NOT NULL AND (events.last_error       IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.last_error       ELSE events.last_error       END,
    worker           = CASE WHEN excluded.worker           IS NOT NULL AND (events.worker           IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.worker           ELSE events.worker           END,
    flow_key         = CASE WHEN excluded.flow_key         IS NOT NULL AND (events.flow_key         IS NULL OR excluded.updated_ms >= events.updated_ms) THEN excluded.flow_key         ELSE events.flow_key         END,
    status           = CASE WHEN excluded.updated_ms >= events.updated_ms THEN excluded.status      ELSE events.status      END,
    finished_ms      = CASE WHEN excluded.updated_ms >= events.updated_ms THEN excluded.finished_ms ELSE events.finished_ms END,
    updated_ms       = MAX(events.updated_ms, excluded.updated_ms)`

const attemptColumns = `app, event_id, created_ms, attempt, at_ms, duration_ms, status_code, error, response, worker, stale`

const numAttemptColumns = 11

// The same attempt written twice hits the UNIQUE key and is skipped.
// MySQL: "ON DUPLICATE KEY UPDATE id = id" rather than INSERT IGNORE, which
// would also turn real errors (a value too long) into warnings and lose data
// silently.
const (
	insertAttemptsHead       = `INSERT INTO attempts (` + attemptColumns + `) VALUES `
	mysqlInsertAttemptsTail  = ` ON DUPLICATE KEY UPDATE id = id`
	sqliteInsertAttemptsTail = ` ON CONFLICT DO NOTHING`
)

// selectEventColumns is the column list scanEvent reads. body_null tells a
// NULL body (not known) from an empty one: the SQLite driver reads an
// empty BLOB as a nil []byte, just like NULL.
const selectEventColumns = `seq, app, event_id, created_ms, url, method, headers, body, body IS NULL AS body_null, due_ms,
    status, attempts, max_attempts, timeout_ms, min_backoff_ms, max_backoff_ms, last_status_code, last_error, worker,
    finished_ms, updated_ms, flow_key`

// selectLatestRun reads the newest run of an identity.
const selectLatestRun = `SELECT ` + selectEventColumns + `
FROM events WHERE app = ? AND event_id = ?
ORDER BY created_ms DESC LIMIT 1`

// selectHistory reads the attempts of one run in the order they happened.
const selectHistory = `SELECT attempt, at_ms, duration_ms, status_code, error, response, worker, stale
FROM attempts WHERE app = ? AND event_id = ? AND created_ms = ?
ORDER BY at_ms, attempt, id`

// The histories of a page of search results, in one query: the head, one
// selectHistoriesRun per run joined with OR, then the order. Rows carry
// their run, and the order within a run is selectHistory's.
const (
	selectHistoriesHead = `SELECT app, event_id, created_ms, attempt, at_ms, duration_ms, status_code, error, response, worker, stale
FROM attempts WHERE `
	selectHistoriesRun   = `(app = ? AND event_id = ? AND created_ms = ?)`
	selectHistoriesOrder = `
ORDER BY at_ms, attempt, id`
)

// Search is assembled from these parts: the head, any of the filters joined
// with AND, then the order and limit. '!' is the LIKE escape character in
// both dialects: a backslash would need doubling in MySQL string literals
// but not in SQLite's.
const (
	searchHead         = `SELECT ` + selectEventColumns + ` FROM events`
	searchFilterApp    = `app = ?`
	searchFilterStatus = `status = ?`
	// The WHERE of the status indexes on SQLite (migration 0005), spelled
	// the same: only then can the planner use them.
	searchFilterNotCompleted = `status <> 'COMPLETED'`
	searchFilterQ            = `(event_id LIKE ? ESCAPE '!' OR url LIKE ? ESCAPE '!')`
	searchFilterFrom         = `due_ms >= ?`
	searchFilterTo           = `due_ms < ?`
	searchFilterCursor       = `seq < ?`
	searchTail               = ` ORDER BY seq DESC LIMIT ?`
)

// queries holds the statements that differ between dialects.
type queries struct {
	insertMigration    string
	upsertEventsTail   string
	insertAttemptsTail string
	// maxParams is the most placeholders one statement may carry.
	maxParams int
}

func queriesFor(dialect string) *queries {
	if dialect == DialectMySQL {
		return &queries{
			insertMigration:    mysqlInsertMigration,
			upsertEventsTail:   mysqlUpsertEventsTail,
			insertAttemptsTail: mysqlInsertAttemptsTail,
			maxParams:          65535,
		}
	}
	return &queries{
		insertMigration:    sqliteInsertMigration,
		upsertEventsTail:   sqliteUpsertEventsTail,
		insertAttemptsTail: sqliteInsertAttemptsTail,
		maxParams:          32766,
	}
}
