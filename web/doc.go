// Package web is Cassata's admin UI: server-rendered pages (templ
// components) to watch the scheduler and to search, inspect, cancel and
// retry events from a browser, to manage topics: subscriptions, a filter
// tester, messages with their deliveries, and to watch and steer recurring
// schedules: next occurrences, latest runs, pause, resume, trigger now,
// delete. It talks to the domain through small interfaces — Backend, which
// *scheduler.Scheduler satisfies, TopicSubscriptions and TopicMessages
// (Config.Topics), which *topic.Subscriptions and *topic.Messages satisfy,
// and Schedules (Config.Schedules), which *schedule.Schedules satisfies; it
// never touches Redis or SQL.
//
// # Shape
//
// Handlers (handlers.go) read the request, call the Backend and build a view
// model (views.go); the templ components (*.templ, generated *_templ.go)
// only render what they are given. Pages work without JavaScript: every
// action is a plain HTML form (POST, then 303 back to a page that shows the
// outcome in #flash). The vendored htmx, when it runs, turns the event
// actions into in-place updates of the #event-actions panel. CSS and htmx are
// embedded (static/) and served under the UI's own path with a content hash
// in the URL, so no CDN and no inline script or style is needed and the
// Content-Security-Policy can stay strict.
//
// # Who may see it
//
//	request ─► security headers ─► gate ─► CSRF ─► session ─► handler
//	                                │        │        │
//	       no password, not Open:   │        │        └ no valid cookie: 302 to login
//	       503 "set CASSATA_ADMIN_  ┘        └ POST without matching token or
//	       PASSWORD"                           from another origin: 403
//
// With a password configured, every page but the login form and the static
// assets needs a session. The session is a cookie, cassata_session, holding
// its expiry and a random nonce, signed with HMAC-SHA256. The signing key is
// derived from the password and a per-deployment salt with PBKDF2, so every
// replica that shares the password accepts the same cookies, changing the
// password logs everyone out, and a stolen cookie is no cheap oracle for
// guessing the password. Sessions are stateless: logout clears the cookie in
// that browser; the expiry (12 h by default) is inside the signed value and
// checked on the server.
//
// Without a password the UI is only served when Config.Open is set (the dev
// mode) and then only to loopback clients; otherwise every page says how to
// set CASSATA_ADMIN_PASSWORD.
//
// # CSRF
//
// Two layers. First, Go's http.CrossOriginProtection refuses a POST that
// the browser marks as not same-origin (Sec-Fetch-Site, sent by every
// browser since 2023) or, without that header, whose Origin does not name
// the host (or the X-Forwarded-Host of a reverse proxy that rewrote it).
// Second, a double-submit token: the first page a browser gets sets
// cassata_csrf, a random token in an HttpOnly, SameSite=Strict cookie;
// every form carries the same token in a hidden field named csrf, and htmx
// sends it in the X-CSRF-Token header (configured by the hx-headers
// attribute on <body>). A POST (login included) passes only when the token
// it carries equals the cookie, and, when the browser sent neither
// Sec-Fetch-Site nor Origin but a Referer, when that names this host.
// The token stays because the first layer lets through every request with
// neither Sec-Fetch-Site nor Origin (old browsers, stripped headers): it
// cannot tell them from non-browser clients, which the UI does not have.
// Another site can neither read the token nor make the browser send the
// Strict cookie along, so a cross-site POST gets 403.
//
// # Failed logins
//
// Each client address has a token bucket of Config.LoginFailures tokens that
// refills over a minute; a failed login takes a token, and an empty bucket
// answers 429 without looking at the password.
package web
