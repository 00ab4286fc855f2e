package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// Hostile input on every create route: v1 (/v1/events), the Cassata-
// compatible /cassata/add (in its README and original-code spellings) and
// each item of /v1/events/batch. Each refusal must be the JSON error body
// naming the field, with 400 for bad values and 413 for sizes, and nothing
// may be stored.

// route is one way of creating an event from a v1-style description.
type route struct {
	name string
	// send creates the event and returns the status and error object
	// (for a batch: the item's).
	send func(t *testing.T, b *bundle, ev map[string]any) (int, map[string]any)
	// field maps a v1 field name to the name this route reports.
	field func(v1 string) string
}

func sameField(v1 string) string { return v1 }

var createRoutes = []route{
	{
		name: "v1",
		send: func(t *testing.T, b *bundle, ev map[string]any) (int, map[string]any) {
			r := b.do(t, http.MethodPost, "/v1/events", ev)
			return r.code, errorObject(t, r)
		},
		field: sameField,
	},
	{
		name: "batch item",
		send: func(t *testing.T, b *bundle, ev map[string]any) (int, map[string]any) {
			good := map[string]any{"app": "shop", "url": "https://example.com/ok", "delay": "1m"}
			r := b.do(t, http.MethodPost, "/v1/events/batch", map[string]any{"events": []any{good, ev}})
			if r.code != http.StatusOK {
				// A size refusal of the whole request.
				return r.code, errorObject(t, r)
			}
			var resp struct {
				Results []struct {
					Status int            `json:"status"`
					Error  map[string]any `json:"error"`
				} `json:"results"`
			}
			if err := json.Unmarshal(r.body, &resp); err != nil || len(resp.Results) != 2 {
				t.Fatalf("batch response %s", r.body)
			}
			if resp.Results[0].Status != http.StatusCreated {
				t.Fatalf("the good item of the batch: %+v", resp.Results[0])
			}
			return resp.Results[1].Status, resp.Results[1].Error
		},
		field: sameField,
	},
	{
		name:  "cassata README keys",
		send:  cassataSend(false),
		field: cassataFieldName(false),
	},
	{
		name:  "cassata original keys",
		send:  cassataSend(true),
		field: cassataFieldName(true),
	},
}

// cassataSend converts a v1 description to /cassata/add's body.
func cassataSend(codeKeys bool) func(t *testing.T, b *bundle, ev map[string]any) (int, map[string]any) {
	return func(t *testing.T, b *bundle, ev map[string]any) (int, map[string]any) {
		keys := map[string][2]string{"id": {"event-id", "eventId"}, "app": {"application-id", "application"},
			"url": {"url", "destinationUrl"}, "method": {"method", "httpMethod"}, "body": {"event", "eventJson"},
			"headers": {"request-headers", "headers"}}
		k := 0
		if codeKeys {
			k = 1
		}
		body := map[string]any{keys["id"][k]: "c-" + fmt.Sprint(ev["id"]), keys["app"][k]: ev["app"], "expiry": expirySecs}
		if ev["id"] == nil {
			body[keys["id"][k]] = "cassata-id"
		}
		for v1, v := range ev {
			switch v1 {
			case "id", "app", "delay":
			case "headers":
				var list []string
				for name, value := range v.(map[string]string) {
					list = append(list, name+": "+value)
				}
				body[keys["headers"][k]] = list
			default:
				body[keys[v1][k]] = v
			}
		}
		r := b.do(t, http.MethodPost, "/cassata/add", body)
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("cassata body is not JSON: %s", r.body)
		}
		if r.code >= 400 {
			if m["status"] != "failed" || m["message"] == "" {
				t.Fatalf("cassata error body %s lacks status/message", r.body)
			}
			e, _ := m["error"].(map[string]any)
			if e == nil || e["field"] != m["field"] {
				t.Fatalf("cassata error body %s: field and error.field differ", r.body)
			}
			return r.code, e
		}
		return r.code, nil
	}
}

func cassataFieldName(codeKeys bool) func(string) string {
	return func(v1 string) string {
		names := map[string][2]string{"url": {"url", "destinationUrl"}, "headers": {"request-headers", "headers"},
			"body": {"event", "eventJson"}, "method": {"method", "httpMethod"}}
		n, ok := names[v1]
		if !ok {
			return v1
		}
		if codeKeys {
			return n[1]
		}
		return n[0]
	}
}

// errorObject returns the v1 error object of an error response (nil for a success).
func errorObject(t *testing.T, r response) map[string]any {
	t.Helper()
	if r.code < 400 {
		return nil
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error response Content-Type %q: %s", ct, r.body)
	}
	m := obj(t, r)
	e, ok := m["error"].(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("not an error body: %s", r.body)
	}
	return e
}

// wantRefused checks a refusal and that its message is human text.
func wantRefused(t *testing.T, rt route, code int, e map[string]any, wantCode int, v1Field string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("%s: status %d, want %d (error %v)", rt.name, code, wantCode, e)
	}
	if e == nil {
		t.Fatalf("%s: no error object", rt.name)
	}
	if want := rt.field(v1Field); e["field"] != want {
		t.Fatalf("%s: error.field = %v, want %q (error %v)", rt.name, e["field"], want, e)
	}
	msg, _ := e["message"].(string)
	if msg == "" || strings.Contains(msg, "\n") {
		t.Fatalf("%s: message %q", rt.name, msg)
	}
}

func guardedSetup(t *testing.T) *bundle {
	return setupWith(t, setupOpts{guard: &delivery.AddressGuard{}})
}

// TestCreateRefusesBlockedDestinations is the create-time SSRF matrix.
func TestCreateRefusesBlockedDestinations(t *testing.T) {
	t.Parallel()
	b := guardedSetup(t)
	hosts := []string{
		"127.0.0.1", "127.0.0.1:8080", "0.0.0.0", "[::1]", "[::1]:8443", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
		"169.254.169.254", "[::ffff:169.254.169.254]", "metadata.google.internal", "metadata.goog",
		"localhost", "localhost:3000", "admin.localhost", "100.64.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1",
		"[fc00::1]", "[fe80::1%25eth0]", "[64:ff9b::a9fe:a9fe]", "2130706433", "0x7f000001", "0177.0.0.1",
		"127.1", "0", "[::127.0.0.1]",
	}
	for _, rt := range createRoutes {
		for i, host := range hosts {
			t.Run(rt.name+"/"+host, func(t *testing.T) {
				t.Parallel()
				id := fmt.Sprintf("ssrf-%d", i)
				code, e := rt.send(t, b, map[string]any{"app": "shop", "id": id, "url": "http://" + host + "/hook", "delay": "1m"})
				wantRefused(t, rt, code, e, http.StatusBadRequest, "url")
				for _, path := range []string{"/v1/events/shop/" + id, "/v1/events/shop/c-" + id} {
					if r := b.do(t, http.MethodGet, path, nil); r.code != http.StatusNotFound {
						t.Fatalf("a refused event was stored: GET %s = %d", path, r.code)
					}
				}
			})
		}
	}
	// Public destinations still go through with the guard on.
	for _, rt := range createRoutes {
		code, e := rt.send(t, b, map[string]any{"app": "shop", "id": "public-" + strings.ReplaceAll(rt.name, " ", "-"),
			"url": "https://example.com/hook", "delay": "1m"})
		if code != http.StatusCreated && code != http.StatusOK {
			t.Errorf("%s: public URL refused: %d %v", rt.name, code, e)
		}
	}
}

// TestCreateAllowsPrivateWithoutGuard: CASSATA_BLOCK_PRIVATE=off (dev)
// keeps loopback destinations working; only ambiguous hosts are refused.
func TestCreateAllowsPrivateWithoutGuard(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "loop", "url": "http://127.0.0.1:8080/hook", "delay": "1m"}), http.StatusCreated)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "lh", "url": "http://localhost:8080/hook", "delay": "1m"}), http.StatusCreated)
	wantError(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "short", "url": "http://2130706433/hook", "delay": "1m"}), http.StatusBadRequest, "url")
}

// TestCreateRefusesHostileHeaders: header names that belong to Cassata's
// signature, and values that would split the request, are refused on every
// route; headers that belong to the connection are refused by v1 and
// dropped silently by the Cassata-compatible route, whose original clients
// always sent some (API.md §3).
func TestCreateRefusesHostileHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	connection := []map[string]string{
		{"Host": "internal.example"},
		{"host": "internal.example"},
		{"Content-Length": "0"},
		{"Connection": "close"},
		{"Keep-Alive": "timeout=5"},
		{"Proxy-Authorization": "Basic eA=="},
		{"Proxy-Connection": "keep-alive"},
		{"TE": "trailers"},
		{"Trailer": "X-T"},
		{"Transfer-Encoding": "chunked"},
		{"Upgrade": "websocket"},
	}
	bad := []map[string]string{
		{"webhook-id": "shop/forged"},
		{"webhook-signature": "v1,Zm9yZ2Vk"},
		{"Webhook-Timestamp": "1"},
		{"X-Split": "a\r\nX-Injected: yes"},
		{"X-Split": "a\nX-Injected: yes"},
		{"X-Split": "a\rb"},
		{"X-Nul": "a\x00b"},
		{"Bad Name": "v"},
		{"Bad(Name)": "v"},
		{"X-Ünïcode": "v"},
		{"X-Dup": "1", "x-dup": "2"},
	}
	for _, rt := range createRoutes {
		compat := strings.HasPrefix(rt.name, "cassata")
		for i, h := range append(slices.Clone(bad), connection...) {
			t.Run(fmt.Sprintf("%s/%d", rt.name, i), func(t *testing.T) {
				t.Parallel()
				id := fmt.Sprintf("hdr-%s-%d", strings.ReplaceAll(rt.name, " ", "-"), i)
				h := maps.Clone(h)
				h["X-Kept"] = "yes"
				code, e := rt.send(t, b, map[string]any{"app": "shop", "id": id,
					"url": "https://example.com/hook", "delay": "1m", "headers": h})
				if i < len(bad) || !compat {
					wantRefused(t, rt, code, e, http.StatusBadRequest, "headers")
					return
				}
				if code != http.StatusOK {
					t.Fatalf("%s: connection header %v: status %d (%v), want 200", rt.name, h, code, e)
				}
				ev := obj(t, b.do(t, http.MethodGet, "/v1/events/shop/c-"+id, nil))
				if hdrs, _ := ev["headers"].(map[string]any); len(hdrs) != 1 || hdrs["X-Kept"] != "yes" {
					t.Errorf("%s: stored headers %v, want only X-Kept (the connection header dropped)", rt.name, ev["headers"])
				}
			})
		}
	}
}

// TestCreateSizeLimits: 413 with the JSON error body for every limit.
func TestCreateSizeLimits(t *testing.T) {
	t.Parallel()
	b := setupWith(t, setupOpts{limits: scheduler.Limits{MaxBodyBytes: 1 << 10}})
	many := map[string]string{}
	for i := range scheduler.DefaultMaxHeaders + 1 {
		many[fmt.Sprintf("X-H%d", i)] = "v"
	}
	tests := []struct {
		name  string
		ev    map[string]any
		field string
	}{
		{"event body over the limit", map[string]any{"body": strings.Repeat("a", 1<<10+1)}, "body"},
		{"too many headers", map[string]any{"headers": many}, "headers"},
		{"headers too large", map[string]any{"headers": map[string]string{"X-Big": strings.Repeat("v", scheduler.DefaultMaxHeaderBytes)}}, "headers"},
		{"url too long", map[string]any{"url": "https://example.com/" + strings.Repeat("a", scheduler.DefaultMaxURLLength)}, "url"},
	}
	for _, rt := range createRoutes {
		for i, tt := range tests {
			t.Run(rt.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ev := map[string]any{"app": "shop", "id": fmt.Sprintf("size-%d", i), "url": "https://example.com/hook", "delay": "1m"}
				for k, v := range tt.ev {
					ev[k] = v
				}
				code, e := rt.send(t, b, ev)
				wantRefused(t, rt, code, e, http.StatusRequestEntityTooLarge, tt.field)
			})
		}
	}
	// A body exactly at the limit is fine.
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "at-limit", "url": "https://example.com/hook", "delay": "1m", "body": strings.Repeat("a", 1<<10)}),
		http.StatusCreated)
}

// TestRequestSizeLimits: a request larger than its route's limit is cut
// off while it is read, with 413 and the JSON error body.
func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	b := setupWith(t, setupOpts{limits: scheduler.Limits{MaxBodyBytes: 1 << 10}})
	// One create may be 2 × the body limit + 256 KiB; a batch 4 × that.
	pad := strings.Repeat("x", 300<<10)
	tests := []struct {
		path, body string
	}{
		{"/v1/events", `{"app":"shop","id":"big","url":"https://example.com/hook","delay":"1m","pad":"` + pad + `"}`},
		{"/cassata/add", `{"event-id":"big","application-id":"shop","url":"https://example.com/hook","expiry":1900000000,"pad":"` + pad + `"}`},
		{"/cassata/add/", `{"event-id":"big","application-id":"shop","url":"https://example.com/hook","expiry":1900000000,"pad":"` + pad + `"}`},
		{"/v1/events/batch", `{"events":[` + strings.Repeat(`{"app":"shop","delay":"1m","url":"https://example.com/`+strings.Repeat("p", 1000)+`"},`, 1200) + `{}]}`},
		{"/v1/events", strings.Repeat(" ", 300<<10) + `{}`},
	}
	for _, tt := range tests {
		r := b.do(t, http.MethodPost, tt.path, tt.body)
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST %s with %d bytes: status %d, want 413: %.200s", tt.path, len(tt.body), r.code, r.body)
		}
		if !json.Valid(r.body) || !strings.Contains(string(r.body), `"too_large"`) {
			t.Fatalf("POST %s: 413 body %s", tt.path, r.body)
		}
		if strings.HasPrefix(tt.path, "/cassata") && !strings.Contains(string(r.body), `"status":"failed"`) {
			t.Fatalf("POST %s: 413 body %s lacks the Cassata status", tt.path, r.body)
		}
	}
	// A batch with more than 1000 events (each small) is refused as a whole.
	items := strings.TrimSuffix(strings.Repeat(`{"app":"shop","delay":"1m","url":"https://example.com/"},`, api.MaxBatch+1), ",")
	r := b.do(t, http.MethodPost, "/v1/events/batch", `{"events":[`+items+`]}`)
	wantError(t, r, http.StatusRequestEntityTooLarge, "events")
}

// TestNoInternalsInErrors: wrong JSON types and shapes are answered in JSON
// terms, never with Go type names or decoder internals.
func TestNoInternalsInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bodies := []string{
		`[]`, `"x"`, `7`, `null`, `{"app":5}`, `{"app":"shop","headers":{"X":1}}`, `{"app":"shop","headers":"x"}`,
		`{"app":"shop","headers":["a"]}`, `{"app":"shop","at":1}`, `{"app":"shop","max_attempts":"x"}`,
		`{"app":"shop","max_attempts":1e400}`, `{"events":{}}`, `{"events":[1]}`,
		`{"event-id":["x"]}`, `{"request-headers":{"a":"b"}}`, `{"eventId":"x","application":"shop","headers":[1]}`,
		`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		"{\"app\":\"\xff\xfe\"}",
	}
	for _, path := range []string{"/v1/events", "/cassata/add", "/v1/events/batch"} {
		for _, body := range bodies {
			r := b.do(t, http.MethodPost, path, body)
			if r.code >= 500 || r.code < 400 && path != "/v1/events/batch" {
				t.Errorf("POST %s %.60q: status %d: %s", path, body, r.code, r.body)
			}
			for _, leak := range []string{"map[", "[]string", "json.RawMessage", "api.", "scheduler.", "Go value", "Go struct", "goroutine", ".go:", "interface {", "int64", "float64"} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("POST %s %.60q: response leaks %q: %s", path, body, leak, r.body)
				}
			}
		}
	}
}

// TestPanicAnswersJSON500: a panic in any handler is answered with the
// generic JSON 500, without the panic value or a stack trace.
func TestPanicAnswersJSON500(t *testing.T) {
	t.Parallel()
	b := setup(t)
	engine, ok := b.handler.(*gin.Engine)
	if !ok {
		t.Fatalf("handler is %T, not a *gin.Engine", b.handler)
	}
	engine.GET("/v1/test-panic", func(*gin.Context) {
		panic("secret detail redis://user:hunter2@10.0.0.5:6379")
	})
	engine.GET("/v1/test-panic-error", func(*gin.Context) {
		var m map[string]int
		m["boom"]++ // a runtime error, not a string
	})
	for _, path := range []string{"/v1/test-panic", "/v1/test-panic-error"} {
		r := b.do(t, http.MethodGet, path, nil)
		wantStatus(t, r, http.StatusInternalServerError)
		wantJSON(t, r, `{"error":{"code":"internal","message":"internal error"}}`)
		for _, leak := range []string{"hunter2", "secret", "goroutine", ".go:", "nil map", "runtime"} {
			if strings.Contains(string(r.body), leak) {
				t.Fatalf("GET %s: 500 body leaks %q: %s", path, leak, r.body)
			}
		}
	}
}
