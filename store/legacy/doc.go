// Package legacy moves the data of an original (Java) Cassata into this
// one: it reads the original's MySQL tables and turns their rows into live
// events and archived runs. `cassata import` (API.md §1) is a thin wrapper
// around it.
//
// # The source
//
// The original keeps every event in _saas_events (id, event_id,
// application, event_json, http_method, http_headers as a JSON list of
// "Name: value" strings, destination_url, status, expiry, created_at) and,
// with logFailedRequests, the answers of its attempts in _saas_eventlog
// (_saas_events_id, http_response_code, http_response, created_at).
//
// Source only ever runs SELECTs, each page in a read-only transaction
// (START TRANSACTION READ ONLY: the server itself refuses a write), so the
// page's events and their event logs come from one snapshot. Pages follow
// the primary key (WHERE id > last ORDER BY id LIMIT n: keyset pagination,
// no OFFSET), and a page also stops at a byte budget, so memory stays
// bounded for millions of rows. An event_json longer than the body limit is
// not even read: its length is enough to refuse it. The session runs with
// time_zone '+00:00', so TIMESTAMP columns read as the instants they store
// whatever the server's zone.
//
// # What each row becomes
//
//	status                         becomes
//	PENDING                        a live event (Scheduler.CreateMany: validation, SSRF guard, dedup),
//	                               due at expiry; a past expiry is due at once
//	PROCESSING                     the same: a stopped original holds no lease, and its own cleanup
//	                               thread would have put the row back to PENDING (at least once:
//	                               the destination may see it twice, as it could with the original)
//	COMPLETED, FAILED,             an archived run in that status (archive Write, idempotent): the run
//	SERVICE_UNAVAILABLE, CANCELLED began at created_at; its event log rows are its attempts, in order
//	anything else                  invalid: reported, skipped
//
// The request is read the way /cassata/add reads it: the body is
// event_json's text, sent verbatim; http_headers go through
// scheduler.ParseHeaderLines (split at the first colon, value trimmed,
// connection headers dropped, an absent or empty list gives Content-Type:
// application/json); the method defaults to POST. A row Cassata cannot take
// (application or event id out of its alphabet, a bad URL or method,
// headers that do not parse, event_json that is not JSON, a refused
// destination, an identity that Cassata already has with another request)
// is reported with its source id and skipped; the rest goes on.
//
// An event log row is an attempt: http_response_code is its status code and
// http_response its response when the code is an HTTP status (100-599);
// any other code means the original got no HTTP answer, and http_response
// becomes the attempt's error. The original logged only failures, so a
// COMPLETED row's history may be empty: nothing is invented. The run's
// finish time is the latest of created_at, expiry (when past) and its last
// attempt, as the original kept no finish time.
//
// # Idempotency: the ledger
//
// Every identity brought over is recorded in the legacy_imports table of
// the archive database (migration 0003; this package owns its queries).
// A run skips the identities it lists, so a second run changes nothing,
// even for an event that was imported live, delivered and dropped from
// Redis long ago, which a create would otherwise schedule again.
//
//	finished row:  archive Write ──▶ ledger "archived"
//	               (Write is idempotent: a crash between the two rewrites the same rows)
//	pending row:   ledger "creating" ──▶ CreateMany ──▶ ledger "live"
//	                                        │ refused ──▶ ledger entry removed, row reported
//	resume:        "creating" ──▶ Scheduler.Get finds it (live or archived) ──▶ "live"
//	                          └──▶ not found ──▶ created now
//
// The write-ahead "creating" entry closes the one gap: a run that dies
// between the create and the ledger update leaves "creating", and the next
// run asks Cassata whether the event exists instead of creating it blindly
// (Redis only drops a finished event after the archive has it, so Get
// answers for it either way).
//
// The ledger is also the checkpoint: an interrupted run simply starts
// again, reads the source from the beginning (cheap keyset pages and one
// ledger lookup per page) and skips what is recorded. A position
// checkpoint would save that re-read but would never look again at a row
// that was invalid and has been fixed in the source since.
//
// A dry run reads the source and the ledger (when the archive and its table
// exist) and applies the same checks, writing nothing anywhere: it counts
// what a real run would do. It does not ask Redis, so an identity Cassata
// already has (identical, or with another request) counts as live.
package legacy
