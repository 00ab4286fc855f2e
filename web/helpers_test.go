package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/html"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	kdfIterations = 1000 // the real cost only slows tests down
	os.Exit(m.Run())
}

const testPassword = "correct horse battery staple"

// testEnv is a UI on a real HTTP server (loopback) over a fake Backend,
// with a browser-like client: a cookie jar, and redirects not followed so
// tests see them.
type testEnv struct {
	t      *testing.T
	ui     *UI
	fb     *fakeBackend
	clock  *fakeClock
	srv    *httptest.Server
	client *http.Client
	p      string // the UI prefix
	pass   string // the UI's password
}

// setup starts a UI; cfg's Backend and Clock are filled in. By default the
// UI has testPassword.
func setup(t *testing.T, mod ...func(*Config)) *testEnv {
	t.Helper()
	clock := &fakeClock{t: time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)}
	fb := newFakeBackend(clock)
	cfg := Config{Backend: fb, Password: testPassword, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mod {
		m(&cfg)
	}
	ui, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	ui.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	// The server's own transport, not http.DefaultTransport: another
	// parallel test's srv.Close closes the default one's idle connections,
	// which broke a POST of this client that had just taken one
	// ("transport connection broken: http: CloseIdleConnections called").
	client := &http.Client{Transport: srv.Client().Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &testEnv{t: t, ui: ui, fb: fb, clock: clock, srv: srv, client: client, p: ui.Prefix(), pass: cfg.Password}
}

func open(cfg *Config) { cfg.Password, cfg.Open = "", true }

// response is a fetched page.
type response struct {
	*http.Response
	body string
	doc  *html.Node
}

func (e *testEnv) do(req *http.Request) *response {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &response{Response: res, body: string(b)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		if r.doc, err = html.Parse(strings.NewReader(r.body)); err != nil {
			e.t.Fatal(err)
		}
	}
	return r
}

// get fetches a path (relative to the server root).
func (e *testEnv) get(path string) *response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	return e.do(req)
}

// csrf returns the browser's CSRF token, fetching a page first if it has none.
func (e *testEnv) csrf() string {
	e.t.Helper()
	u, _ := url.Parse(e.srv.URL + e.p + "/")
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			return c.Value
		}
	}
	e.get(e.p + "/login")
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			return c.Value
		}
	}
	e.t.Fatal("no CSRF cookie after a page load")
	return ""
}

// post sends a form as a same-origin browser would: with the CSRF token
// (unless form sets csrf itself) and an Origin header. hdr adds or, with
// an empty value, removes headers.
func (e *testEnv) post(path string, form url.Values, hdr ...string) *response {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", e.csrf())
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return e.do(req)
}

// login logs in with the test password.
func (e *testEnv) login() {
	e.t.Helper()
	r := e.post(e.p+"/login", url.Values{"username": {"admin"}, "password": {e.pass}})
	if r.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login: status %d, want 303", r.StatusCode)
	}
}

func (e *testEnv) sessionCookie() *http.Cookie {
	u, _ := url.Parse(e.srv.URL + e.p + "/")
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

func wantStatus(t *testing.T, r *response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.2000s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.body)
	}
}

func wantRedirect(t *testing.T, r *response, status int, location string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.Header.Get("Location"); got != location {
		t.Fatalf("Location %q, want %q", got, location)
	}
}

// ---- HTML helpers

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// findAll returns the elements matching pred, in document order.
func findAll(n *html.Node, pred func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && pred(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func byID(t *testing.T, doc *html.Node, id string) *html.Node {
	t.Helper()
	if doc == nil {
		t.Fatalf("no HTML document to find #%s in", id)
	}
	got := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id })
	if len(got) != 1 {
		t.Fatalf("%d elements with id %q, want 1", len(got), id)
	}
	return got[0]
}

func hasID(doc *html.Node, id string) bool {
	return len(findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id })) > 0
}

// text is an element's text content with white space collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// buttons returns the labels of the submit buttons.
func buttons(doc *html.Node) []string {
	var out []string
	for _, b := range findAll(doc, tag("button")) {
		out = append(out, text(b))
	}
	return out
}

// formOf returns the form that holds the button labelled label.
func formOf(t *testing.T, doc *html.Node, label string) *html.Node {
	t.Helper()
	for _, b := range findAll(doc, tag("button")) {
		if text(b) != label {
			continue
		}
		for n := b.Parent; n != nil; n = n.Parent {
			if n.Type == html.ElementNode && n.Data == "form" {
				return n
			}
		}
	}
	t.Fatalf("no form with a button %q", label)
	return nil
}

// formValues returns the named inputs of a form.
func formValues(form *html.Node) url.Values {
	v := url.Values{}
	for _, in := range findAll(form, tag("input")) {
		if name, ok := attr(in, "name"); ok {
			val, _ := attr(in, "value")
			v.Add(name, val)
		}
	}
	return v
}

// tableRows returns a table's body rows as cell texts.
func tableRows(t *testing.T, doc *html.Node, id string) [][]string {
	t.Helper()
	var rows [][]string
	for _, tb := range findAll(byID(t, doc, id), tag("tbody")) {
		for _, tr := range findAll(tb, tag("tr")) {
			var cells []string
			for c := tr.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					cells = append(cells, text(c))
				}
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

func tableHeader(t *testing.T, doc *html.Node, id string) []string {
	t.Helper()
	var out []string
	for _, th := range findAll(findAll(byID(t, doc, id), tag("thead"))[0], tag("th")) {
		out = append(out, text(th))
	}
	return out
}

// links returns the hrefs of the links whose text is label.
func links(doc *html.Node, label string) []string {
	var out []string
	for _, a := range findAll(doc, tag("a")) {
		if text(a) == label {
			h, _ := attr(a, "href")
			out = append(out, h)
		}
	}
	return out
}

func flashText(t *testing.T, doc *html.Node) string {
	t.Helper()
	f := byID(t, doc, "flash")
	if role, _ := attr(f, "role"); role != "status" {
		t.Errorf("#flash role %q, want status", role)
	}
	return text(f)
}

type htmlNode = html.Node

// TestHarnessClientSurvivesOtherServersClosing: closing an httptest server
// closes http.DefaultTransport's idle connections; the harness's client has
// its own, so a parallel test's srv.Close cannot break a request it is
// about to send on one (TestBulkCancel failed that way once). Fails with
// the default transport (tried).
func TestHarnessClientSurvivesOtherServersClosing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.get("/admin/login") // leaves an idle connection in the client's pool
	other := httptest.NewServer(http.NotFoundHandler())
	other.Close()
	var reused bool
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/admin/login", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(),
		&httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !reused {
		t.Error("the harness's idle connection was closed by another server's Close")
	}
}
