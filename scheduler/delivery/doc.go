// Package delivery sends an event's HTTP request and judges the answer.
//
//	Deliverer (delivery.go)  builds the request, sends it with the event's
//	                         timeout, reads at most MaxResponseBytes, never
//	                         follows redirects; Classify maps the result to
//	                         COMPLETED, FAILED or a retry (PENDING); an
//	                         answer with Cassata-Retry: false is never retried
//	AddressGuard (ssrf.go)   the SSRF guard: refuses private, loopback,
//	                         link-local and reserved addresses at create time
//	                         (CheckURL) and again for every address actually
//	                         dialled (Control), so DNS rebinding cannot pass
//	Signer (signing.go)      Standard Webhooks signatures with each
//	                         application's signing secrets
//	h1Client (h1.go)         plain-http deliveries over HTTP/1.1 on the
//	                         delivering goroutine (no per-request goroutine
//	                         hand-off); https goes through net/http
//
//	Deliver ── http:// ──▶ h1Client ─┐  (one net.Dialer: the guard's
//	        └─ https:// ─▶ Transport ┴─▶ Control sees every connection)
//
// The worker (scheduler/worker) calls Deliver under the event's lease; a
// send check (WithSendCheck) lets it refuse the request at the last moment
// when the lease is gone. Nothing here touches Redis: the Signer reads
// keys through SigningKeySource (tenant.Apps implements it).
package delivery
