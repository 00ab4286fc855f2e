package legacy

// Every SQL statement of the import: the source's (SELECTs only, MySQL) and
// the ledger's (the archive database: MySQL or SQLite). Lists of values are
// a head, one placeholder group per value, and a tail.

// Source: the original's tables.
const (
	// selectSourceColumns lists the columns of the original's tables, to
	// tell a database that is not an original Cassata's at once.
	selectSourceColumns = `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('_saas_events', '_saas_eventlog')`

	// selectLogIndex counts indexes that start with _saas_events_id (the
	// original creates idx_events_id): without one, every page's event
	// log lookup scans the whole table.
	selectLogIndex = `SELECT COUNT(*) FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_saas_eventlog' AND COLUMN_NAME = '_saas_events_id' AND SEQ_IN_INDEX = 1`

	selectMaxID = `SELECT COALESCE(MAX(id), 0) FROM _saas_events`

	// selectEventsPage reads one keyset page. An event_json longer than
	// the first argument (the body limit) is not transferred: its length
	// is enough to refuse the row.
	selectEventsPage = `SELECT id, event_id, application,
    CASE WHEN LENGTH(event_json) <= ? THEN event_json END, LENGTH(event_json),
    http_method, http_headers, destination_url, status, expiry, created_at
FROM _saas_events WHERE id > ? ORDER BY id LIMIT ?`

	// selectLogs reads the event logs of some events, oldest first.
	selectLogsHead = `SELECT _saas_events_id, id, http_response_code, http_response, created_at
FROM _saas_eventlog WHERE _saas_events_id IN (`
	selectLogsTail = `) ORDER BY _saas_events_id, created_at, id`
)

// Ledger: the legacy_imports table of the archive database (migration
// 0003).
const (
	mysqlLedgerExists  = `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'legacy_imports'`
	sqliteLedgerExists = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'legacy_imports'`

	// selectLedgerHead looks up identities of one application.
	selectLedgerHead = `SELECT event_id, state FROM legacy_imports WHERE app = ? AND event_id IN (`
	selectLedgerTail = `)`

	ledgerColumns = `app, event_id, source_id, source_status, state, updated_ms`
	ledgerGroup   = `(?, ?, ?, ?, ?, ?)`
	insertLedger  = `INSERT INTO legacy_imports (` + ledgerColumns + `) VALUES `

	// An intent ("creating") never replaces an entry: a concurrent run
	// may have recorded the identity as done meanwhile.
	mysqlIntentTail  = ` ON DUPLICATE KEY UPDATE state = state`
	sqliteIntentTail = ` ON CONFLICT (app, event_id) DO NOTHING`

	// An outcome ("live", "archived") is final.
	mysqlDoneTail = ` ON DUPLICATE KEY UPDATE source_id = VALUES(source_id), source_status = VALUES(source_status),
    state = VALUES(state), updated_ms = VALUES(updated_ms)`
	sqliteDoneTail = ` ON CONFLICT (app, event_id) DO UPDATE SET source_id = excluded.source_id,
    source_status = excluded.source_status, state = excluded.state, updated_ms = excluded.updated_ms`

	// deleteIntentsHead forgets intents of one application whose create
	// was refused, so a later run tries the (fixed) row again.
	deleteIntentsHead = `DELETE FROM legacy_imports WHERE state = 'creating' AND app = ? AND event_id IN (`
	deleteIntentsTail = `)`
)

// ledgerQueries holds the ledger statements that differ between dialects.
type ledgerQueries struct {
	exists     string
	intentTail string
	doneTail   string
}
