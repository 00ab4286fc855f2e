package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestPasswordSetRedirectsToLogin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for path, next := range map[string]string{
		"/admin/":                  "/admin/",
		"/admin/events?q=ab&app=x": "/admin/events?q=ab&app=x",
		"/admin/failures":          "/admin/failures",
		"/admin/events/app/ev-1":   "/admin/events/app/ev-1",
	} {
		r := e.get(path)
		wantRedirect(t, r, http.StatusFound, "/admin/login?next="+url.QueryEscape(next))
	}
	// The login form and the static files are reachable without a session.
	wantStatus(t, e.get("/admin/login"), http.StatusOK)
	wantStatus(t, e.get("/admin/static/cassata.css"), http.StatusOK)
	// A POST without a session (but with a valid token) is refused the same way.
	r := e.post("/admin/events/app/ev-1/cancel", nil)
	wantRedirect(t, r, http.StatusFound, "/admin/login?next="+url.QueryEscape("/admin/"))
}

func TestLoginPageForm(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.get("/admin/login?next=" + url.QueryEscape("/admin/failures"))
	wantStatus(t, r, http.StatusOK)
	form := formOf(t, r.doc, "Log in")
	if action, _ := attr(form, "action"); action != "/admin/login" {
		t.Errorf("login form action %q", action)
	}
	v := formValues(form)
	for _, name := range []string{"username", "password", "csrf", "next"} {
		if _, ok := v[name]; !ok {
			t.Errorf("login form has no field %q", name)
		}
	}
	if v.Get("next") != "/admin/failures" || v.Get("csrf") != e.csrf() {
		t.Errorf("login form next=%q csrf=%q", v.Get("next"), v.Get("csrf"))
	}
	// Every page has the nav, the login page included; no Log out button yet.
	nav := findAll(r.doc, tag("nav"))[0]
	var got []string
	for _, a := range findAll(nav, tag("a")) {
		got = append(got, text(a))
	}
	if strings.Join(got, ",") != "Dashboard,Events,Failures,Topics,Schedules,Flows" {
		t.Errorf("nav links %v", got)
	}
	if strings.Contains(strings.Join(buttons(r.doc), ","), "Log out") {
		t.Error("Log out shown before logging in")
	}
}

func TestLoginWrongCredentials(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, creds := range []url.Values{
		{"username": {"admin"}, "password": {"wrong"}},
		{"username": {"root"}, "password": {testPassword}},
		{"username": {"admin"}, "password": {""}},
	} {
		r := e.post("/admin/login", creds)
		wantStatus(t, r, http.StatusUnauthorized)
		if got := flashText(t, r.doc); got != "Invalid username or password" {
			t.Errorf("flash %q", got)
		}
		if e.sessionCookie() != nil {
			t.Fatal("a failed login set a session cookie")
		}
	}
}

func TestLoginSetsSessionAndRedirects(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.post("/admin/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {"/admin/failures?app=a"}})
	wantRedirect(t, r, http.StatusSeeOther, "/admin/failures?app=a")
	var ck *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			ck = c
		}
	}
	if ck == nil {
		t.Fatal("no session cookie")
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/admin" || ck.Secure {
		t.Errorf("cookie attributes: HttpOnly=%v SameSite=%v Path=%q Secure=%v", ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure)
	}
	if ck.MaxAge != 12*3600 {
		t.Errorf("cookie Max-Age %d, want 12h", ck.MaxAge)
	}
	r = e.get("/admin/")
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(strings.Join(buttons(r.doc), ","), "Log out") {
		t.Error("no Log out button when logged in")
	}
	// Logged in, the login page sends you on.
	wantRedirect(t, e.get("/admin/login"), http.StatusFound, "/admin/")
}

func TestLoginNextMustStayInTheUI(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"https://evil.example/", "//evil.example/admin/", "/elsewhere", "/admin/\\evil", "javascript:alert(1)"} {
		e := setup(t)
		r := e.post("/admin/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {next}})
		wantRedirect(t, r, http.StatusSeeOther, "/admin/")
	}
}

func TestLoginSecureCookieBehindTLSProxy(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.post("/admin/login", url.Values{"username": {"admin"}, "password": {testPassword}}, "X-Forwarded-Proto", "https")
	wantStatus(t, r, http.StatusSeeOther)
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie && !c.Secure {
			t.Error("session cookie not Secure behind an https proxy")
		}
	}
}

func TestSessionRefused(t *testing.T) {
	t.Parallel()
	other := setup(t, func(c *Config) { c.Password = "another password" })
	other.login()
	foreign := other.sessionCookie().Value

	e := setup(t)
	e.login()
	good := e.sessionCookie().Value
	tampered := []byte(good)
	tampered[3] ^= 1 // the expiry digits
	for name, value := range map[string]string{
		"tampered":         string(tampered),
		"other password":   foreign,
		"garbage":          "hello",
		"no signature":     good[:strings.LastIndexByte(good, '.')],
		"empty":            "",
		"signature alone ": good[strings.LastIndexByte(good, '.'):],
	} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/admin/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound {
			t.Errorf("%s cookie: status %d, want 302 to login", name, res.StatusCode)
		}
	}
	// The genuine one works until it expires.
	wantStatus(t, e.get("/admin/"), http.StatusOK)
	e.clock.Advance(12*time.Hour - time.Second)
	wantStatus(t, e.get("/admin/"), http.StatusOK)
	e.clock.Advance(2 * time.Second)
	wantRedirect(t, e.get("/admin/"), http.StatusFound, "/admin/login?next=%2Fadmin%2F")
}

func TestLogout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	r := e.get("/admin/")
	form := formOf(t, r.doc, "Log out")
	if action, _ := attr(form, "action"); action != "/admin/logout" {
		t.Fatalf("logout form action %q", action)
	}
	r = e.post("/admin/logout", formValues(form))
	wantRedirect(t, r, http.StatusSeeOther, "/admin/login")
	if e.sessionCookie() != nil {
		t.Error("session cookie still set after logout")
	}
	wantStatus(t, e.get("/admin/"), http.StatusFound)
}

func TestNoPasswordNotOpen(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.Password = "" })
	for _, path := range []string{"/admin/", "/admin/login", "/admin/events", "/admin/failures", "/admin/events/a/b"} {
		r := e.get(path)
		wantStatus(t, r, http.StatusServiceUnavailable)
		if !strings.Contains(text(r.doc), "CASSATA_ADMIN_PASSWORD") {
			t.Errorf("%s: the 503 page does not say to set CASSATA_ADMIN_PASSWORD", path)
		}
	}
	r := e.post("/admin/login", url.Values{"username": {"admin"}, "password": {""}, "csrf": {""}})
	wantStatus(t, r, http.StatusServiceUnavailable)
}

func TestOpenDevMode(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	for _, path := range []string{"/admin/", "/admin/events", "/admin/failures"} {
		wantStatus(t, e.get(path), http.StatusOK)
	}
	// No login in open mode: the login page goes to the dashboard.
	wantRedirect(t, e.get("/admin/login"), http.StatusFound, "/admin/")
	// Actions still need the CSRF token.
	e.fb.add(ev("a", "p1", "PENDING"))
	wantStatus(t, e.post("/admin/events/a/p1/cancel", url.Values{"csrf": {"nope"}}), http.StatusForbidden)
	wantStatus(t, e.post("/admin/events/a/p1/cancel", nil), http.StatusSeeOther)

	// Open means open to this machine only.
	r := gin.New()
	e.ui.Mount(r)
	req := httptest.NewRequest(http.MethodGet, "/admin/", nil)
	req.RemoteAddr = "192.0.2.7:4711"
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("open UI from a remote client: status %d, want 503", w.Code)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	e.fb.add(ev("a", "ok", "PENDING"))
	token := e.csrf()
	cases := []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"no token", url.Values{"csrf": {""}}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"csrf": {strings.Repeat("x", 43)}}, nil, http.StatusForbidden},
		{"foreign origin", nil, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"foreign referer", nil, []string{"Origin", "", "Referer", "https://evil.example/page"}, http.StatusForbidden},
		{"null origin", nil, []string{"Origin", "null"}, http.StatusForbidden},
		{"wrong header token", url.Values{"csrf": {""}}, []string{"X-CSRF-Token", "nope"}, http.StatusForbidden},
		{"same origin", nil, nil, http.StatusConflict}, // passes CSRF; the event is CANCELLED by now
		{"htmx header token", url.Values{"csrf": {""}}, []string{"X-CSRF-Token", token, "HX-Request", "true"}, http.StatusConflict},
		{"no origin at all", nil, []string{"Origin", ""}, http.StatusConflict},
		{"proxy host", nil, []string{"Origin", "https://ops.example.com", "X-Forwarded-Host", "ops.example.com"}, http.StatusConflict},
	}
	// The first accepted one cancels the event; later accepted ones get 409.
	if r := e.post("/admin/events/a/ok/cancel", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("first cancel: %d", r.StatusCode)
	}
	for _, tc := range cases {
		r := e.post("/admin/events/a/ok/cancel", tc.form, tc.hdr...)
		if r.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.want)
		}
	}
	// A cross-site login attempt is refused too.
	r := e.post("/admin/login", url.Values{"username": {"admin"}, "password": {testPassword}}, "Origin", "https://evil.example")
	wantStatus(t, r, http.StatusForbidden)
	// Without the cookie at all (a cross-site request under SameSite=Strict).
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/admin/login",
		strings.NewReader(url.Values{"csrf": {token}, "username": {"admin"}, "password": {testPassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("POST without the CSRF cookie: %d, want 403", res.StatusCode)
	}
}

// TestCrossOriginPOSTRefused: what a modern browser says about where a POST
// comes from (Sec-Fetch-Site, checked by http.CrossOriginProtection) is
// enough to refuse it, even when it carries the session, the CSRF cookie and
// a valid token (e.g. one leaked through a log or a shared screenshot).
func TestCrossOriginPOSTRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	e.fb.add(ev("a", "p", "PENDING"))
	for _, site := range []string{"cross-site", "same-site"} {
		r := e.post("/admin/events/a/p/cancel", nil, "Sec-Fetch-Site", site, "Origin", "https://evil.example")
		wantStatus(t, r, http.StatusForbidden)
		// Even an Origin that looks like ours does not override the browser's verdict.
		r = e.post("/admin/events/a/p/cancel", nil, "Sec-Fetch-Site", site)
		wantStatus(t, r, http.StatusForbidden)
	}
	if st := e.fb.status("a", "p"); st != "PENDING" {
		t.Fatalf("event %s after refused cross-origin POSTs, want PENDING", st)
	}
	wantStatus(t, e.post("/admin/login", url.Values{"username": {"admin"}, "password": {testPassword}},
		"Sec-Fetch-Site", "cross-site", "Origin", ""), http.StatusForbidden)
	// The browser's own same-origin POST passes, also behind a proxy that
	// rewrote Host (the Origin then names another host).
	r := e.post("/admin/events/a/p/cancel", nil, "Sec-Fetch-Site", "same-origin", "Origin", "https://ops.example.com")
	wantStatus(t, r, http.StatusSeeOther)
}

func TestCSRFCookie(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.get("/admin/login")
	var ck *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == csrfCookie {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/admin" || len(ck.Value) < 32 {
		t.Fatalf("CSRF cookie %+v", ck)
	}
	// The token is stable across pages, and htmx gets it from <body hx-headers>.
	e.login()
	r = e.get("/admin/events")
	body := findAll(r.doc, tag("body"))[0]
	hx, _ := attr(body, "hx-headers")
	if hx != `{"X-CSRF-Token":"`+ck.Value+`"}` {
		t.Errorf("hx-headers %q", hx)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	check := func(what string, r *response) {
		t.Helper()
		h := r.Header
		if got := h.Get("Content-Security-Policy"); got != contentSecurityPolicy {
			t.Errorf("%s: CSP %q", what, got)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s %q, want %q", what, k, h.Get(k), v)
			}
		}
	}
	for _, path := range []string{"/", "/admin", "/admin/", "/admin/login", "/admin/static/cassata.css"} {
		check(path, e.get(path))
	}
	e.login()
	for _, path := range []string{"/admin/", "/admin/events", "/admin/failures", "/admin/events/a/missing"} {
		r := e.get(path)
		check(path, r)
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, r.Header.Get("Cache-Control"))
		}
		// No inline script or style anywhere: the CSP would block them.
		for _, s := range findAll(r.doc, tag("script")) {
			if src, _ := attr(s, "src"); src == "" {
				t.Errorf("%s: inline <script>", path)
			}
		}
		if n := findAll(r.doc, func(n *htmlNode) bool { _, ok := attr(n, "style"); return ok || n.Data == "style" }); len(n) > 0 {
			t.Errorf("%s: %d inline styles", path, len(n))
		}
	}
	check("403", e.post("/admin/logout", url.Values{"csrf": {"x"}}))
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) {
		c.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
	})
	bad := url.Values{"username": {"admin"}, "password": {"guess"}}
	for i := 1; i <= 5; i++ {
		wantStatus(t, e.post("/admin/login", bad, "X-Test-Client", "mallory"), http.StatusUnauthorized)
	}
	r := e.post("/admin/login", bad, "X-Test-Client", "mallory")
	wantStatus(t, r, http.StatusTooManyRequests)
	if got := flashText(t, r.doc); got != "Too many failed logins; try again later." {
		t.Errorf("flash %q", got)
	}
	// Limited means limited: not even the right password is tried.
	good := url.Values{"username": {"admin"}, "password": {testPassword}}
	wantStatus(t, e.post("/admin/login", good, "X-Test-Client", "mallory"), http.StatusTooManyRequests)
	// Other clients are not affected.
	wantStatus(t, e.post("/admin/login", bad, "X-Test-Client", "alice"), http.StatusUnauthorized)
	// The bucket refills: one token after 12 s, all five after a minute.
	e.clock.Advance(12 * time.Second)
	wantStatus(t, e.post("/admin/login", bad, "X-Test-Client", "mallory"), http.StatusUnauthorized)
	wantStatus(t, e.post("/admin/login", bad, "X-Test-Client", "mallory"), http.StatusTooManyRequests)
	e.clock.Advance(time.Minute)
	wantStatus(t, e.post("/admin/login", good, "X-Test-Client", "mallory"), http.StatusSeeOther)
}

func TestBasePath(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.BasePath = "/cassata/" })
	wantRedirect(t, e.get("/"), http.StatusFound, "/cassata/admin/")
	wantRedirect(t, e.get("/cassata/admin"), http.StatusMovedPermanently, "/cassata/admin/")
	wantRedirect(t, e.get("/cassata/admin/events?q=x"), http.StatusFound, "/cassata/admin/login?next="+url.QueryEscape("/cassata/admin/events?q=x"))
	if r := e.get("/admin/"); r.StatusCode != http.StatusNotFound {
		t.Errorf("/admin/ without the base path: %d, want 404", r.StatusCode)
	}
	r := e.get("/cassata/admin/login")
	wantStatus(t, r, http.StatusOK)
	r = e.post("/cassata/admin/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {"/cassata/admin/events"}})
	wantRedirect(t, r, http.StatusSeeOther, "/cassata/admin/events")
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie && c.Path != "/cassata/admin" {
			t.Errorf("session cookie path %q", c.Path)
		}
	}
	e.fb.add(ev("app", "e1", "FAILED"))
	for _, path := range []string{"/cassata/admin/", "/cassata/admin/events", "/cassata/admin/failures", "/cassata/admin/events/app/e1"} {
		r := e.get(path)
		wantStatus(t, r, http.StatusOK)
		for _, n := range findAll(r.doc, func(*htmlNode) bool { return true }) {
			for _, key := range []string{"href", "src", "action", "hx-post"} {
				if v, ok := attr(n, key); ok && !strings.HasPrefix(v, "/cassata/admin/") && v != "" {
					t.Errorf("%s: <%s %s=%q> outside the base path", path, n.Data, key, v)
				}
			}
		}
	}
	// Actions redirect within the base path.
	r = e.post("/cassata/admin/events/app/e1/retry", nil)
	wantRedirect(t, r, http.StatusSeeOther, "/cassata/admin/events/app/e1")
	wantStatus(t, e.get("/cassata/admin/static/htmx.min.js"), http.StatusOK)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Error("New without Backend: no error")
	}
	for _, bp := range []string{"/a b", "/x?y", "//evil", "/a\"b"} {
		if _, err := New(Config{Backend: &fakeBackend{}, BasePath: bp}); err == nil {
			t.Errorf("BasePath %q accepted", bp)
		}
	}
	c := Config{Backend: &fakeBackend{}, BasePath: "cassata/"}.WithDefaults()
	if c.BasePath != "/cassata" || c.SessionTTL != DefaultSessionTTL || c.LoginFailures != DefaultLoginFailures {
		t.Errorf("defaults: %+v", c)
	}
}
