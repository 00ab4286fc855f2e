package api_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// FuzzCreateRequest feeds arbitrary bodies to the create routes: whatever
// comes in, the answer is never a 500 and always valid JSON.
func FuzzCreateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"app":"shop","id":"f1","url":"https://example.com/hook","delay":"1m"}`,
		`{"app":"shop","url":"https://example.com/hook","at":"2030-01-02T03:04:05.678Z","method":"put","headers":{"X-A":"1"},"body":{"k":[1,2]}}`,
		`{"app":"shop","id":"f2","url":"https://example.com/hook","expiry":1900000000123,"max_attempts":3,"timeout":"10s","min_backoff":1000,"max_backoff":"1m"}`,
		`{"event-id":"f3","application-id":"shop","event":"{\"a\":1}","expiry":1900000000,"url":"https://example.com/hook","method":"GET","request-headers":["X-T: a:b"]}`,
		`{"eventId":"f4","application":"shop","eventJson":{"a":1},"expiry":"1900000000","destinationUrl":"http://example.com","httpMethod":"DELETE","headers":["A:b"]}`,
		`{"app":"shop","id":"f5","url":"https://example.com/hook","delay":"1m","headers":{"X-A":"1\r\nX-B: 2"}}`,
		`{"app":"shop","id":"f6","url":"https://example.com/hook","delay":"1m","max_attempts":"x"}`,
		`{"app":"shop","id":"f7","url":"https://example.com/hook","at":"0000-01-01T00:00:00Z"}`,
		`{"app":"shop","id":"f8","url":"https://example.com/hook","expiry":1e15,"body":{"s":"` + "\xff\x00" + `"}}`,
		`{"events":[]}`,
		`{"events":[{"app":"shop","id":"f9","url":"http://[::1]/","delay":"1m","headers":{"Host":"x"}},7,null]}`,
		`{"app":"shop","id":"f10","url":"http://0x7f000001/","delay":"1m","headers":{"webhook-id":"x","TE":"trailers"}}`,
		`{"event-id":"f11","application-id":"shop","expiry":1900000000,"url":"http://localhost/","request-headers":["Transfer-Encoding: chunked","X: a\r\nY: b",":v","Name"]}`,
		`{"app":"shop","id":"f12","url":"http://x/","delay":"1m","headers":{"X":1}}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	b := setup(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/events", "/cassata/add"} {
			r := b.do(t, http.MethodPost, path, body)
			if r.code >= 500 {
				t.Fatalf("POST %s %q: status %d: %s", path, body, r.code, r.body)
			}
			if !json.Valid(r.body) {
				t.Fatalf("POST %s %q: status %d, body not JSON: %q", path, body, r.code, r.body)
			}
			if r.code >= 400 {
				var m map[string]any
				if err := json.Unmarshal(r.body, &m); err != nil || m["error"] == nil && m["status"] != "failed" {
					t.Fatalf("POST %s %q: status %d without an error body: %s", path, body, r.code, r.body)
				}
			}
		}
	})
}

// cassataFields are the names a /cassata/add error may report.
var cassataFields = []string{"event-id", "eventId", "application-id", "application", "event", "eventJson",
	"expiry", "url", "destinationUrl", "method", "httpMethod", "request-headers", "headers"}

// FuzzCassataAdd builds /cassata/add requests from fuzzed fields (in either
// spelling) with the SSRF guard on. Whatever the fields, the answer is one
// of the documented statuses with the documented body; what is accepted is
// stored exactly as given, with headers that pass validation and a URL the
// guard accepts.
func FuzzCassataAdd(f *testing.F) {
	for _, seed := range []struct {
		id, app, url, method, event, headers string
		expiry                               int64
		codeKeys                             bool
	}{
		{"e1", "shop", "https://example.com/hook", "POST", `{"a":1}`, "X-A: 1", 1900000000, false},
		{"e2", "shop", "http://example.com/x?y=1", "get", "hello", "X-B: 2\nX-C:3", 1900000000123, true},
		{"e3", "shop", "http://127.0.0.1/", "", "", "", 1900000000, false},
		{"e4", "shop", "http://0177.0.0.1/", "", "", "", 1900000000, true},
		{"e5", "shop", "https://example.com/", "", "", "Host: evil\nwebhook-signature: v1,x", 1900000000, false},
		{"e6", "shop", "https://example.com/", "", "", "X-A: a\r\nX-B: b", 1900000000, false},
		{"e7", "shop", "https://example.com/", "TRACE", "", "Name Only", 1900000000, true},
		{"e 8", "sh/op", "ftp://example.com/", "", "", ":", -1, false},
		{"e9", "shop", "http://[::ffff:169.254.169.254]/", "", "", "", 99999999999, false},
	} {
		f.Add(seed.id, seed.app, seed.url, seed.method, seed.event, seed.headers, seed.expiry, seed.codeKeys)
	}
	b := setupWith(f, setupOpts{guard: &delivery.AddressGuard{}})
	guard := &delivery.AddressGuard{}
	f.Fuzz(func(t *testing.T, id, app, url, method, event, headers string, expiry int64, codeKeys bool) {
		k := func(readme, code string) string {
			if codeKeys {
				return code
			}
			return readme
		}
		body := map[string]any{k("event-id", "eventId"): id, k("application-id", "application"): app,
			k("url", "destinationUrl"): url, "expiry": expiry}
		if method != "" {
			body[k("method", "httpMethod")] = method
		}
		if event != "" {
			body[k("event", "eventJson")] = event
		}
		var list []string
		if headers != "" {
			list = strings.Split(headers, "\n")
			body[k("request-headers", "headers")] = list
		}
		r := b.do(t, http.MethodPost, "/cassata/add", body)
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("status %d, body not JSON: %q", r.code, r.body)
		}
		switch r.code {
		case http.StatusOK:
		case http.StatusConflict:
			if m["status"] != "failed" || m["message"] == "" {
				t.Fatalf("409 body %s", r.body)
			}
			return
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			field, _ := m["field"].(string)
			if m["status"] != "failed" || m["message"] == "" || !slices.Contains(cassataFields, field) {
				t.Fatalf("%d body %s: want status failed, a message and one of the fields", r.code, r.body)
			}
			return
		default:
			t.Fatalf("status %d: %s", r.code, r.body)
		}

		// Accepted: stored as given.
		g := b.do(t, http.MethodGet, "/v1/events/"+neturl.PathEscape(app)+"/"+neturl.PathEscape(id), nil)
		if g.code != http.StatusOK {
			t.Fatalf("accepted %q/%q, GET = %d %s", app, id, g.code, g.body)
		}
		var ev struct {
			URL     string            `json:"url"`
			Method  string            `json:"method"`
			Headers map[string]string `json:"headers"`
			Body    *string           `json:"body"`
		}
		if err := json.Unmarshal(g.body, &ev); err != nil {
			t.Fatal(err)
		}
		// JSON carries text: invalid UTF-8 in what was sent became U+FFFD.
		url, event = viaJSON(url), viaJSON(event)
		if ev.URL != url || ev.Body == nil || *ev.Body != event {
			t.Fatalf("stored url %q body %v, sent %q %q", ev.URL, ev.Body, url, event)
		}
		// The original's rules (API.md §4): connection headers are dropped,
		// no list at all means Content-Type: application/json.
		want := map[string]string{}
		for _, h := range list {
			name, value, _ := strings.Cut(viaJSON(h), ":")
			name = strings.TrimSpace(name)
			switch canon := http.CanonicalHeaderKey(name); {
			case canon == "Host", canon == "Content-Length", canon == "Connection", canon == "Transfer-Encoding",
				canon == "Keep-Alive", canon == "Te", canon == "Trailer", canon == "Upgrade", strings.HasPrefix(canon, "Proxy-"):
				continue
			}
			want[name] = strings.TrimSpace(value)
		}
		if len(list) == 0 {
			want["Content-Type"] = "application/json"
		}
		if len(want) != len(ev.Headers) {
			t.Fatalf("stored headers %v, sent %q", ev.Headers, list)
		}
		for name, value := range ev.Headers {
			if want[name] != value {
				t.Fatalf("stored header %q: %q, sent %q", name, value, list)
			}
			canon := http.CanonicalHeaderKey(name)
			if strings.ContainsAny(value, "\r\n") || canon == "Host" || canon == "Transfer-Encoding" ||
				canon == "Content-Length" || strings.HasPrefix(canon, "Webhook-") || strings.HasPrefix(canon, "Proxy-") {
				t.Fatalf("accepted header %q: %q", name, value)
			}
		}
		ev2 := &scheduler.Event{App: app, ID: id, URL: url, Method: ev.Method, Headers: ev.Headers, DueAt: time.Unix(expirySecs, 0)}
		if err := (scheduler.Limits{}).Check(ev2); err != nil {
			t.Fatalf("accepted an event that fails validation: %v", err)
		}
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatalf("accepted %q: %v", url, err)
		}
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if a, err := netip.ParseAddr(host); err == nil && guard.Blocked(a) {
			t.Fatalf("accepted %q: %s is blocked", url, a)
		}
		if guard.CheckHost(host) != nil {
			t.Fatalf("accepted %q: the guard refuses its host", url)
		}
	})
}

// viaJSON is s after a trip through JSON (invalid UTF-8 replaced).
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}
