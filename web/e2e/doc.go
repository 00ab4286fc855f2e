// Package e2e holds the end-to-end tests of the admin UI: a real headless
// Chromium, driven from Go with chromedp, against the whole system in one
// process — a real redis-server (internal/redistest), a SQLite
// archive, a worker and an archiver delivering to a local destination, and
// the API engine with the UI mounted on it, served on 127.0.0.1.
//
//	chromium (headless, new browser context per test)
//	   │ clicks, typing, screenshots        ▲ console, exceptions, requests
//	   ▼                                     │ (any CSP violation, JS exception
//	httptest server 127.0.0.1 ── gin engine: /v1 API + /admin UI (web)
//	                                 │
//	                           scheduler ── redis-server ── worker ──► destination
//	                                 │                 └── archiver ──► SQLite
//
// The package has no code of its own beyond this file; everything is in the
// tests. They need Debian's chromium at /usr/bin/chromium (or the path in
// CASSATA_CHROMIUM) and redis-server; without them they skip, unless
// CASSATA_REQUIRE_CHROMIUM=1 and CASSATA_REQUIRE_REDIS=1 (as `make test`
// sets) turn the skip into a failure.
//
// Screenshots of the main pages are written to CASSATA_E2E_ARTIFACTS
// (`make test` uses artifacts/screenshots) or, when unset, to a temporary
// directory that the test logs.
//
// The load-time figures of the events page with 100,000 archived events come
// from a benchmark that the normal test run skips:
//
//	go test -run '^$' -bench EventsPage -benchtime 5x ./web/e2e
//	CASSATA_E2E_ARCHIVE=mysql go test -run '^$' -bench EventsPage -benchtime 5x ./web/e2e  # on MariaDB
package e2e
