// Package archive keeps every event's story after Redis lets it go: one row
// per run of an identity and one row per delivery attempt, in MySQL/MariaDB
// (production) or SQLite (cassata dev), behind scheduler.Archive.
//
// # Opening
//
// Open takes the CASSATA_ARCHIVE_DSN (API.md §1):
//
//	mysql://user:pass@host:3306/db?params  →  go-sql-driver/mysql: user:pass@tcp(host:3306)/db?params
//	                                          (defaults: parseTime=true, timeout=10s, interpolateParams=true; port 3306)
//	sqlite:///abs/path/file.db             →  modernc.org/sqlite (pure Go): WAL, busy_timeout, synchronous=NORMAL, temp_store=MEMORY,
//	                                          case_sensitive_like, BEGIN IMMEDIATE; the parent directory is created
//
// Query parameters pass through to the driver. RedactDSN hides the password;
// no error of this package contains it.
//
// # Schema
//
// Numbered migrations embedded from migrations/<dialect>/NNNN_name.sql,
// recorded in schema_migrations(version, applied_at) and applied by Migrate.
//
//	events    seq (auto-increment, the immutable sort key: higher = archived later)
//	          app, event_id, created_ms  ← the run: UNIQUE
//	          url, method, headers (JSON), body, due_ms, max_attempts, timeout_ms, min/max_backoff_ms
//	          status, attempts, last_status_code, last_error, worker, finished_ms, updated_ms
//	          flow_key (0004)
//	attempts  app, event_id, created_ms, attempt, at_ms, worker  ← UNIQUE attempts_once: one row per attempt
//	          (keyed created_ms first since 0005, so new keys land together)
//	          duration_ms, status_code, error, response, stale
//
// A run begins when an identity is created; retrying a finished run
// continues it (same created_ms); creating the identity again after the
// retention window starts a new run, a new row. Get returns the run with
// the highest created_ms; Search orders by seq. Indexes serve search by
// (app, seq), (status, seq), (app, status, seq) and a due range (due_ms);
// an id prefix or URL substring (q) is a filter on whatever else the search
// reads. On SQLite the status indexes leave COMPLETED out (0005): most runs
// end COMPLETED, so a search for it walks events by seq and finds a page at
// once, and completing a run only removes its PENDING entries.
//
// # Idempotency and merging
//
// Write applies a batch of outbox records in one transaction with
// multi-row upserts (prepared once per table and power-of-two row count and
// reused, see stmts.go), so the archiver can replay a batch (crash between
// commit and acknowledgement, two archivers, reclaimed entries) without
// duplicating anything:
//
//   - attempts: insert-or-skip on the UNIQUE key; a replayed attempt is a
//     no-op.
//   - events: upsert on (app, event_id, created_ms). A record sets only the
//     columns it knows; the others are passed as NULL, meaning "this record
//     does not tell". Most event columns are therefore nullable, and NULL in
//     the table means no record has told the value yet (an attempt archived
//     before its run's create leaves url NULL until the create arrives).
//
// The rule for each nullable column: take the record's value when it has one
// and either the row has none yet or the record is at least as new as the
// row (record UpdatedMS ≥ row updated_ms). status and finished_ms take the
// record's value when it is at least as new. updated_ms keeps the maximum.
// So an older record never overwrites a newer one, a late create still fills
// in the url of a run whose final record came first, and applying records in
// any order converges on what applying them in UpdatedMS order gives (Write
// sorts each batch by UpdatedMS, so within a batch that is exact).
//
// What each record kind tells:
//
//	create   url, method, headers, policy, due, attempts (0), flow_key ('' for none); status PENDING
//	attempt  attempts, last_status_code, last_error, worker (from the Attempt); due (the
//	         next try, when its Event carries one); status
//	         a stale attempt only adds its attempts row: it did not count
//	final    everything from the Event (body included unless dropped, flow_key '' for none),
//	         last outcome; status,
//	         finished_ms (Event.FinishedAt, else UpdatedMS)
//	requeue  due, attempts (the count after the requeue: 0 after a retry), status; finished_ms
//	         cleared, since the run is no longer finished
//
// Empty values of the request (url, method, headers, body, policy) count as
// "not told", so a create without a body never clears one.
//
// # Search
//
// Filters on app, status, an event id prefix or url substring (LIKE with
// '!' as escape character, so % and _ match literally; case-sensitive in
// both dialects), and a due range [From, To). Keyset pagination on seq: a
// page is "seq < cursor ORDER BY seq DESC LIMIT n+1"; the extra row only
// tells that there is a next page. No OFFSET, so a deep page costs what the
// first does and rows archived meanwhile never shift later pages. The
// cursor is base64url("1:<seq>").
//
// seq is handed out at insert time, not at commit: with two writers at once
// (several archivers on MySQL), a transaction holding a lower seq may commit
// after a page above it was read. A reader whose cursor has not reached
// that seq yet finds the row on a later page; one already past it misses it
// until it searches again. Pages never overlap.
package archive
