package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

const (
	expirySecs = 1900000000 // 2030-03-17T17:46:40Z
	expiryDue  = "2030-03-17T17:46:40.000Z"
)

func TestCassataAdd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		body string // the request, verbatim
		// what GET /v1/events/shop/<id> must show
		id, url, method, evBody, dueAt string
		headers                        map[string]string
	}{
		{
			name: "README keys, event as a JSON string",
			path: "/cassata/add",
			body: `{"event-id":"r1","application-id":"shop","event":"{\"a\": 1}","expiry":1900000000,` +
				`"url":"https://example.com/hook","method":"PUT","request-headers":["X-A: 1"]}`,
			id: "r1", url: "https://example.com/hook", method: "PUT", evBody: `{"a": 1}`, dueAt: expiryDue,
			headers: map[string]string{"X-A": "1"},
		},
		{
			name: "original code keys, trailing slash",
			path: "/cassata/add/",
			body: `{"eventId":"c1","application":"shop","eventJson":"hello","expiry":1900000000,` +
				`"destinationUrl":"http://example.com/x?y=1","httpMethod":"PATCH","headers":["X-B: 2"]}`,
			id: "c1", url: "http://example.com/x?y=1", method: "PATCH", evBody: "hello", dueAt: expiryDue,
			headers: map[string]string{"X-B": "2"},
		},
		{
			name: "event as a JSON object is sent as its JSON text",
			path: "/cassata/add",
			body: `{"event-id":"o1","application-id":"shop","event":{"k":[1,2],"s":"v"},"expiry":1900000000,"url":"https://example.com/hook"}`,
			id:   "o1", url: "https://example.com/hook", method: "POST", evBody: `{"k":[1,2],"s":"v"}`, dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "eventJson as a JSON object",
			path: "/cassata/add/",
			body: `{"eventId":"o2","application":"shop","eventJson":{"n":null},"expiry":1900000000,"destinationUrl":"https://example.com/hook"}`,
			id:   "o2", url: "https://example.com/hook", method: "POST", evBody: `{"n":null}`, dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "event as a number and a list",
			path: "/cassata/add",
			body: `{"event-id":"o3","application-id":"shop","event":[1,"two"],"expiry":1900000000,"url":"https://example.com/hook"}`,
			id:   "o3", url: "https://example.com/hook", method: "POST", evBody: `[1,"two"]`, dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "no event: empty body, default method POST",
			path: "/cassata/add",
			body: `{"event-id":"e1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`,
			id:   "e1", url: "https://example.com/hook", method: "POST", evBody: "", dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "expiry in milliseconds",
			path: "/cassata/add",
			body: `{"event-id":"ms1","application-id":"shop","expiry":1900000000123,"url":"https://example.com/hook"}`,
			id:   "ms1", url: "https://example.com/hook", method: "POST", dueAt: "2030-03-17T17:46:40.123Z",
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "expiry at the milliseconds threshold",
			path: "/cassata/add",
			body: `{"event-id":"ms2","application-id":"shop","expiry":100000000000,"url":"https://example.com/hook"}`,
			id:   "ms2", url: "https://example.com/hook", method: "POST", dueAt: "1973-03-03T09:46:40.000Z",
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "expiry just below the threshold is seconds",
			path: "/cassata/add",
			body: `{"event-id":"s2","application-id":"shop","expiry":99999999999,"url":"https://example.com/hook"}`,
			id:   "s2", url: "https://example.com/hook", method: "POST", dueAt: "5138-11-16T09:46:39.000Z",
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "headers split at the first colon, values trimmed",
			path: "/cassata/add",
			body: `{"event-id":"h1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook",` +
				`"request-headers":["X-T: a:b","Authorization:Bearer x","X-Sp:   padded  ","X-Url: http://h:80/p","X-Empty:"]}`,
			id: "h1", url: "https://example.com/hook", method: "POST", dueAt: expiryDue,
			headers: map[string]string{"X-T": "a:b", "Authorization": "Bearer x", "X-Sp": "padded", "X-Url": "http://h:80/p", "X-Empty": ""},
		},
		{
			name: "method in lower case",
			path: "/cassata/add",
			body: `{"event-id":"m1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook","method":"delete"}`,
			id:   "m1", url: "https://example.com/hook", method: "DELETE", dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "connection headers of original clients are dropped, the event accepted",
			path: "/cassata/add",
			body: `{"event-id":"hop1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook",` +
				`"request-headers":["Connection: keep-alive","Host: example.com","Content-Length: 12","Proxy-Authorization: Basic eA==",` +
				`"Transfer-Encoding: chunked","Keep-Alive: timeout=5","Content-Type: text/plain","X-Kept: 1"]}`,
			id: "hop1", url: "https://example.com/hook", method: "POST", dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "text/plain", "X-Kept": "1"},
		},
		{
			name: "an empty header list gets the original's default Content-Type",
			path: "/cassata/add/",
			body: `{"eventId":"hop2","application":"shop","expiry":1900000000,"destinationUrl":"https://example.com/hook","headers":[]}`,
			id:   "hop2", url: "https://example.com/hook", method: "POST", dueAt: expiryDue,
			headers: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "only connection headers: dropped, nothing added",
			path: "/cassata/add",
			body: `{"event-id":"hop3","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook","request-headers":["Connection: close"]}`,
			id:   "hop3", url: "https://example.com/hook", method: "POST", dueAt: expiryDue,
			headers: map[string]string{},
		},
	}
	b := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, http.MethodPost, tt.path, tt.body)
			wantStatus(t, r, http.StatusOK)
			wantJSON(t, r, `{"status":"ok","event-id":"`+tt.id+`","application-id":"shop"}`)

			ev := obj(t, b.do(t, http.MethodGet, "/v1/events/shop/"+tt.id, nil))
			if ev["url"] != tt.url || ev["method"] != tt.method || ev["body"] != tt.evBody || ev["due_at"] != tt.dueAt || ev["status"] != "PENDING" {
				t.Errorf("stored event = url %v method %v body %q due_at %v status %v;\nwant url %v method %v body %q due_at %v PENDING",
					ev["url"], ev["method"], ev["body"], ev["due_at"], ev["status"], tt.url, tt.method, tt.evBody, tt.dueAt)
			}
			hdrs, _ := ev["headers"].(map[string]any)
			if len(hdrs) != len(tt.headers) {
				t.Errorf("headers = %v, want %v", hdrs, tt.headers)
			}
			for k, v := range tt.headers {
				if hdrs[k] != v {
					t.Errorf("header %s = %q, want %q (all: %v)", k, hdrs[k], v, hdrs)
				}
			}
		})
	}
}

func TestCassataAddDuplicate(t *testing.T) {
	t.Parallel()
	const dup = `{"status":"failed","message":"duplicate entry for appId and eventId combination"}`
	b := setup(t)
	first := `{"event-id":"d1","application-id":"shop","event":"x","expiry":1900000000,"url":"https://example.com/hook"}`
	wantStatus(t, b.do(t, http.MethodPost, "/cassata/add", first), http.StatusOK)
	tests := []struct{ name, path, body string }{
		{"identical replay", "/cassata/add", first},
		{"identical replay with original keys", "/cassata/add/",
			`{"eventId":"d1","application":"shop","eventJson":"x","expiry":1900000000,"destinationUrl":"https://example.com/hook"}`},
		{"different content", "/cassata/add",
			`{"event-id":"d1","application-id":"shop","event":"y","expiry":1900000001,"url":"https://example.com/other"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(t, http.MethodPost, tt.path, tt.body)
			wantStatus(t, r, http.StatusConflict)
			wantJSON(t, r, dup)
		})
	}
	// A v1 event is a duplicate for the Cassata route too.
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "v1", "url": "https://example.com/hook", "expiry": 1900000000,
	}), http.StatusCreated)
	r := b.do(t, http.MethodPost, "/cassata/add", `{"event-id":"v1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`)
	wantStatus(t, r, http.StatusConflict)
	wantJSON(t, r, dup)
	// The stored event is the first one.
	ev := obj(t, b.do(t, http.MethodGet, "/v1/events/shop/d1", nil))
	if ev["body"] != "x" || ev["url"] != "https://example.com/hook" {
		t.Errorf("duplicate overwrote the event: %v", ev)
	}
}

func TestCassataAddInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		field string // "" when the input has no single field to blame
	}{
		{"missing event-id", `{"application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`, "event-id"},
		{"missing application-id", `{"event-id":"i1","expiry":1900000000,"url":"https://example.com/hook"}`, "application-id"},
		{"missing url", `{"event-id":"i1","application-id":"shop","expiry":1900000000}`, "url"},
		{"missing expiry", `{"event-id":"i1","application-id":"shop","url":"https://example.com/hook"}`, "expiry"},
		{"null event-id", `{"event-id":null,"application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`, "event-id"},
		{"empty event-id", `{"event-id":"","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`, "event-id"},
		{"event-id not a string", `{"event-id":{},"application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`, "event-id"},
		{"eventId with a space", `{"eventId":"a b","application":"shop","expiry":1900000000,"destinationUrl":"https://example.com/hook"}`, "eventId"},
		{"invalid application-id", `{"event-id":"i1","application-id":"my shop","expiry":1900000000,"url":"https://example.com/hook"}`, "application-id"},
		{"invalid application", `{"eventId":"i1","application":"a/b","expiry":1900000000,"destinationUrl":"https://example.com/hook"}`, "application"},
		{"bad url", `{"event-id":"i1","application-id":"shop","expiry":1900000000,"url":"ftp://example.com"}`, "url"},
		{"relative url", `{"event-id":"i1","application-id":"shop","expiry":1900000000,"url":"/hook"}`, "url"},
		{"bad destinationUrl", `{"eventId":"i1","application":"shop","expiry":1900000000,"destinationUrl":"example.com"}`, "destinationUrl"},
		{"bad method", `{"event-id":"i1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook","method":"TRACE"}`, "method"},
		{"bad httpMethod", `{"eventId":"i1","application":"shop","expiry":1900000000,"destinationUrl":"https://example.com/hook","httpMethod":"FETCH"}`, "httpMethod"},
		{"expiry not a number", `{"event-id":"i1","application-id":"shop","expiry":"soon","url":"https://example.com/hook"}`, "expiry"},
		{"expiry negative", `{"event-id":"i1","application-id":"shop","expiry":-5,"url":"https://example.com/hook"}`, "expiry"},
		{"expiry after year 9999", `{"event-id":"i1","application-id":"shop","expiry":999999999999999,"url":"https://example.com/hook"}`, "expiry"},
		{"expiry an object", `{"event-id":"i1","application-id":"shop","expiry":{},"url":"https://example.com/hook"}`, "expiry"},
		{"header without colon", `{"event-id":"i1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook","request-headers":["X-A 1"]}`, "request-headers"},
		{"headers not a list", `{"eventId":"i1","application":"shop","expiry":1900000000,"destinationUrl":"https://example.com/hook","headers":{"X-A":"1"}}`, "headers"},
		{"header name not a token", `{"event-id":"i1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook","request-headers":["X A: 1"]}`, "request-headers"},
		{"header value with CR LF", `{"event-id":"i1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook","request-headers":["X-A: 1\r\nX-Evil: 2"]}`, "request-headers"},
		{"not JSON", `event-id=i1`, ""},
		{"empty body", ``, ""},
		{"a JSON list", `[]`, ""},
		{"JSON null", `null`, "event-id"},
	}
	b := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, http.MethodPost, "/cassata/add", tt.body)
			wantStatus(t, r, http.StatusBadRequest)
			m := obj(t, r)
			if m["status"] != "failed" {
				t.Errorf("status = %v, want failed: %s", m["status"], r.body)
			}
			if msg, _ := m["message"].(string); msg == "" {
				t.Errorf("no message: %s", r.body)
			}
			if tt.field != "" {
				if m["field"] != tt.field {
					t.Errorf("field = %v, want %q: %s", m["field"], tt.field, r.body)
				}
				if e, _ := m["error"].(map[string]any); e == nil || e["field"] != tt.field {
					t.Errorf("error.field = %v, want %q: %s", e, tt.field, r.body)
				}
			}
		})
	}
	// Nothing was stored under the ids used above.
	wantStatus(t, b.do(t, http.MethodGet, "/cassata/status/shop/i1", nil), http.StatusNotFound)
}

// A required field left out is named in both spellings, so that clients of
// either the README or the original code recognise it.
func TestCassataAddMissingNamesBothSpellings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, http.MethodPost, "/cassata/add", `{"eventId":"i1","application":"shop","expiry":1900000000}`)
	wantStatus(t, r, http.StatusBadRequest)
	if msg, _ := obj(t, r)["message"].(string); !strings.Contains(msg, "url") || !strings.Contains(msg, "destinationUrl") {
		t.Errorf("message %q does not name url / destinationUrl", msg)
	}
}

func TestCassataDelete(t *testing.T) {
	t.Parallel()
	const (
		ok        = `{"status":"ok"}`
		notFound  = `{"status":"failed","message":"event not found"}`
		cancelled = `{"status":"failed","message":"event in status CANCELLED. Cannot be deleted."}`
	)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			wantStatus(t, b.do(t, http.MethodPost, "/cassata/add",
				`{"event-id":"d1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`), http.StatusOK)
			steps := []struct {
				name, path string
				want       int
				body       string
			}{
				{"cancel pending", "/cassata/delete/shop/d1", http.StatusOK, ok},
				{"cancel again", "/cassata/delete/shop/d1", http.StatusConflict, cancelled},
				{"unknown event", "/cassata/delete/shop/nope", http.StatusNotFound, notFound},
				{"unknown app", "/cassata/delete/other/d1", http.StatusNotFound, notFound},
				{"invalid app id", "/cassata/delete/bad%20app/d1", http.StatusNotFound, notFound},
			}
			for _, s := range steps {
				r := b.do(t, method, s.path, nil)
				if r.code != s.want {
					t.Fatalf("%s: status %d, want %d: %s", s.name, r.code, s.want, r.body)
				}
				wantJSON(t, r, s.body)
			}
			r := b.do(t, http.MethodGet, "/cassata/status/shop/d1", nil)
			wantStatus(t, r, http.StatusOK)
			wantJSON(t, r, `"CANCELLED"`)
		})
	}
}

func TestCassataStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wantStatus(t, b.do(t, http.MethodPost, "/cassata/add",
		`{"event-id":"s1","application-id":"shop","expiry":1900000000,"url":"https://example.com/hook"}`), http.StatusOK)
	tests := []struct {
		path string
		want int
		body string
	}{
		{"/cassata/status/shop/s1", http.StatusOK, `"PENDING"`},
		{"/cassata/status/shop/nope", http.StatusNotFound, `{"status":"failed","message":"event not found"}`},
		{"/cassata/status/nope/s1", http.StatusNotFound, `{"status":"failed","message":"event not found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, http.MethodGet, tt.path, nil)
			wantStatus(t, r, tt.want)
			wantJSON(t, r, tt.body)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestCassataEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		add        string
		id         string
		wantExpiry float64
		wantJSON   string
		wantMethod string
		wantHdrs   []any
	}{
		{
			name: "expiry in seconds",
			add: `{"event-id":"g1","application-id":"shop","event":"{\"a\":1}","expiry":1900000000,` +
				`"url":"https://example.com/hook","method":"PUT","request-headers":["X-T: a:b","A-First:1","M-Mid: x"]}`,
			id: "g1", wantExpiry: 1900000000, wantJSON: `{"a":1}`, wantMethod: "PUT", wantHdrs: []any{"A-First: 1", "M-Mid: x", "X-T: a:b"},
		},
		{
			name: "expiry in milliseconds",
			add:  `{"eventId":"g2","application":"shop","eventJson":{"b":2},"expiry":1900000000123,"destinationUrl":"https://example.com/hook"}`,
			id:   "g2", wantExpiry: 1900000000123, wantJSON: `{"b":2}`, wantMethod: "POST", wantHdrs: []any{"Content-Type: application/json"},
		},
	}
	b := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantStatus(t, b.do(t, http.MethodPost, "/cassata/add", tt.add), http.StatusOK)
			r := b.do(t, http.MethodGet, "/cassata/event/shop/"+tt.id, nil)
			wantStatus(t, r, http.StatusOK)
			m := obj(t, r)
			for _, k := range []string{"eventId", "application", "eventJson", "httpMethod", "headers", "destinationUrl", "eventStatus", "expiry", "lastUpdated", "eventLogs"} {
				if _, ok := m[k]; !ok {
					t.Errorf("field %s missing: %s", k, r.body)
				}
			}
			if m["eventId"] != tt.id || m["application"] != "shop" || m["eventJson"] != tt.wantJSON || m["httpMethod"] != tt.wantMethod ||
				m["destinationUrl"] != "https://example.com/hook" || m["eventStatus"] != "PENDING" || m["expiry"] != tt.wantExpiry {
				t.Errorf("event = %s", r.body)
			}
			if hdrs, _ := m["headers"].([]any); !slices.Equal(hdrs, tt.wantHdrs) {
				t.Errorf("headers = %v, want %v", m["headers"], tt.wantHdrs)
			}
			if logs, ok := m["eventLogs"].([]any); !ok || len(logs) != 0 {
				t.Errorf("eventLogs = %v, want []", m["eventLogs"])
			}
			if lu, _ := m["lastUpdated"].(float64); lu <= 0 {
				t.Errorf("lastUpdated = %v, want a Unix time in ms", m["lastUpdated"])
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, http.MethodGet, "/cassata/event/shop/nope", nil)
		wantStatus(t, r, http.StatusNotFound)
		wantJSON(t, r, `{"status":"failed","message":"event not found"}`)
	})
}
