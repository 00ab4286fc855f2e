package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// eventKeys are the fields API.md §5 pins on every event object.
var eventKeys = []string{"app", "id", "url", "method", "headers", "body", "status", "attempts", "max_attempts", "due_at", "created_at", "updated_at", "history"}

// wantEvent checks that m is an event object as API.md §5 describes it.
func wantEvent(t testing.TB, m map[string]any) {
	t.Helper()
	for _, k := range eventKeys {
		if _, ok := m[k]; !ok {
			t.Errorf("event lacks %q: %v", k, m)
		}
	}
	for _, k := range []string{"due_at", "created_at", "updated_at"} {
		if s, _ := m[k].(string); !rfc3339Millis.MatchString(s) {
			t.Errorf("%s = %q, want RFC 3339 with milliseconds, UTC", k, m[k])
		}
	}
	if _, ok := m["headers"].(map[string]any); !ok {
		t.Errorf("headers = %v, want an object", m["headers"])
	}
	if _, ok := m["history"].([]any); !ok {
		t.Errorf("history = %v, want a list", m["history"])
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.clock.Now()
	tests := []struct {
		name string
		req  string // without app and id
		want map[string]any
	}{
		{"at", `"at":"2030-01-02T03:04:05.678Z"`, map[string]any{"due_at": "2030-01-02T03:04:05.678Z"}},
		{"at with an offset is shown in UTC", `"at":"2030-01-02T05:04:05.678+02:00"`, map[string]any{"due_at": "2030-01-02T03:04:05.678Z"}},
		{"at without fraction", `"at":"2030-01-02T03:04:05Z"`, map[string]any{"due_at": "2030-01-02T03:04:05.000Z"}},
		{"at with nanoseconds is cut to milliseconds", `"at":"2030-01-02T03:04:05.678999999Z"`, map[string]any{"due_at": "2030-01-02T03:04:05.678Z"}},
		{"delay", `"delay":"90s"`, map[string]any{"due_at": fmtMillis(now.Add(90 * time.Second))}},
		{"delay zero", `"delay":"0s"`, map[string]any{"due_at": fmtMillis(now)}},
		{"delay compound", `"delay":"1h2m3.5s"`, map[string]any{"due_at": fmtMillis(now.Add(time.Hour + 2*time.Minute + 3500*time.Millisecond))}},
		{"expiry in seconds", `"expiry":1900000000`, map[string]any{"due_at": expiryDue}},
		{"expiry in milliseconds", `"expiry":1900000000123`, map[string]any{"due_at": "2030-03-17T17:46:40.123Z"}},
		{"body as a string is kept verbatim", `"delay":"1m","body":"{\"a\": 1}"`, map[string]any{"body": `{"a": 1}`}},
		{"body as an object is its JSON text", `"delay":"1m","body":{"a":[1,2]}`, map[string]any{"body": `{"a":[1,2]}`}},
		{"body as a number", `"delay":"1m","body":42`, map[string]any{"body": `42`}},
		{"no body", `"delay":"1m"`, map[string]any{"body": ""}},
		{"default method and attempts", `"delay":"1m"`, map[string]any{"method": "POST", "max_attempts": float64(5), "attempts": float64(0), "status": "PENDING"}},
		{"method in lower case", `"delay":"1m","method":"put"`, map[string]any{"method": "PUT"}},
		{"own max_attempts", `"delay":"1m","max_attempts":3`, map[string]any{"max_attempts": float64(3)}},
		{"own timeout and backoff", `"delay":"1m","timeout":"10s","min_backoff":"2s","max_backoff":"1m0s"`,
			map[string]any{"timeout": "10s", "min_backoff": "2s", "max_backoff": "1m0s"}},
		{"flow_key", `"delay":"1m","flow_key":"tenant:1.eu_west-2"`, map[string]any{"flow_key": "tenant:1.eu_west-2"}},
		{"no flow_key is left out", `"delay":"1m"`, map[string]any{"flow_key": nil}},
		{"empty flow_key is none", `"delay":"1m","flow_key":""`, map[string]any{"flow_key": nil}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("c%d", i)
			r := b.do(t, http.MethodPost, "/v1/events",
				`{"app":"shop","id":"`+id+`","url":"https://example.com/hook","headers":{"X-A":"1"},`+tt.req+`}`)
			wantStatus(t, r, http.StatusCreated)
			m := obj(t, r)
			wantEvent(t, m)
			if m["app"] != "shop" || m["id"] != id || m["url"] != "https://example.com/hook" || m["created_at"] != fmtMillis(now) {
				t.Errorf("event = %s", r.body)
			}
			if h, _ := m["headers"].(map[string]any); len(h) != 1 || h["X-A"] != "1" {
				t.Errorf("headers = %v", m["headers"])
			}
			for k, v := range tt.want {
				if m[k] != v {
					t.Errorf("%s = %#v, want %#v", k, m[k], v)
				}
			}
			// GET shows the same event.
			g := b.do(t, http.MethodGet, "/v1/events/shop/"+id, nil)
			wantStatus(t, g, http.StatusOK)
			wantJSON(t, g, string(r.body))
		})
	}
}

func TestCreateGeneratesID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := map[string]bool{}
	for range 3 {
		r := b.do(t, http.MethodPost, "/v1/events", `{"app":"shop","url":"https://example.com/hook","delay":"1m"}`)
		wantStatus(t, r, http.StatusCreated)
		id, _ := obj(t, r)["id"].(string)
		if !scheduler.ValidID(id) || ids[id] {
			t.Fatalf("generated id %q is invalid or repeated", id)
		}
		ids[id] = true
		wantStatus(t, b.do(t, http.MethodGet, "/v1/events/shop/"+id, nil), http.StatusOK)
	}
	// An empty id is the same as none.
	r := b.do(t, http.MethodPost, "/v1/events", `{"app":"shop","id":"","url":"https://example.com/hook","delay":"1m"}`)
	wantStatus(t, r, http.StatusCreated)
	if id, _ := obj(t, r)["id"].(string); id == "" {
		t.Errorf("no id generated: %s", r.body)
	}
}

func TestCreateReplay(t *testing.T) {
	t.Parallel()
	base := map[string]any{
		"app": "shop", "url": "https://example.com/hook", "method": "PUT", "headers": map[string]string{"X-A": "1"},
		"body": map[string]any{"k": "v"}, "max_attempts": 3,
	}
	with := func(id string, kv ...any) map[string]any {
		m := map[string]any{"id": id}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name   string
		first  map[string]any
		second map[string]any
		want   int
	}{
		{"identical at", with("r1", "at", "2030-01-02T03:04:05.678Z"), with("r1", "at", "2030-01-02T03:04:05.678Z"), http.StatusOK},
		{"same at in another zone", with("r2", "at", "2030-01-02T03:04:05.678Z"), with("r2", "at", "2030-01-02T04:04:05.678+01:00"), http.StatusOK},
		{"identical expiry", with("r3", "expiry", 1900000000), with("r3", "expiry", 1900000000000), http.StatusOK},
		{"identical delay later", with("r4", "delay", "1m"), with("r4", "delay", "1m"), http.StatusOK},
		{"method in another case", with("r5", "delay", "1m"), with("r5", "delay", "1m", "method", "put"), http.StatusOK},
		{"other url", with("d1", "delay", "1m"), with("d1", "delay", "1m", "url", "https://example.com/other"), http.StatusConflict},
		{"other body", with("d2", "delay", "1m"), with("d2", "delay", "1m", "body", "other"), http.StatusConflict},
		{"other headers", with("d3", "delay", "1m"), with("d3", "delay", "1m", "headers", map[string]string{"X-A": "2"}), http.StatusConflict},
		{"other method", with("d4", "delay", "1m"), with("d4", "delay", "1m", "method", "POST"), http.StatusConflict},
		{"other due time", with("d5", "at", "2030-01-02T03:04:05.678Z"), with("d5", "at", "2030-01-02T03:04:05.679Z"), http.StatusConflict},
		{"other max_attempts", with("d6", "delay", "1m"), with("d6", "delay", "1m", "max_attempts", 4), http.StatusConflict},
		{"max_attempts left out", with("d7", "delay", "1m"), with("d7", "delay", "1m", "max_attempts", nil), http.StatusConflict},
		{"identical flow_key", with("r6", "delay", "1m", "flow_key", "k:1"), with("r6", "delay", "1m", "flow_key", "k:1"), http.StatusOK},
		{"other flow_key", with("d8", "delay", "1m", "flow_key", "k:1"), with("d8", "delay", "1m", "flow_key", "k:2"), http.StatusConflict},
		{"flow_key left out", with("d9", "delay", "1m", "flow_key", "k:1"), with("d9", "delay", "1m"), http.StatusConflict},
		{"flow_key added", with("d10", "delay", "1m"), with("d10", "delay", "1m", "flow_key", "k:1"), http.StatusConflict},
	}
	b := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := b.do(t, http.MethodPost, "/v1/events", tt.first)
			wantStatus(t, first, http.StatusCreated)
			b.clock.Advance(time.Second)
			r := b.do(t, http.MethodPost, "/v1/events", tt.second)
			if tt.want == http.StatusOK {
				wantStatus(t, r, http.StatusOK)
				wantJSON(t, r, string(first.body)) // the stored event, unchanged
				return
			}
			wantError(t, r, http.StatusConflict, "")
			g := b.do(t, http.MethodGet, "/v1/events/shop/"+tt.first["id"].(string), nil)
			wantJSON(t, g, string(first.body))
		})
	}
}

func TestCreateInvalid(t *testing.T) {
	t.Parallel()
	const ok = `"app":"shop","id":"x1","url":"https://example.com/hook"`
	tests := []struct {
		name   string
		body   string
		status int
		field  string // "" when not checked
	}{
		{"not JSON", `app=shop`, 400, ""},
		{"empty", ``, 400, ""},
		{"truncated", `{"app":"shop"`, 400, ""},
		{"a list", `[]`, 400, ""},
		{"a string", `"x"`, 400, ""},
		{"trailing data", `{` + ok + `,"delay":"1m"} {}`, 400, ""},
		{"no due time", `{` + ok + `}`, 400, ""},
		{"at and delay", `{` + ok + `,"at":"2030-01-02T03:04:05Z","delay":"1m"}`, 400, ""},
		{"at and expiry", `{` + ok + `,"at":"2030-01-02T03:04:05Z","expiry":1900000000}`, 400, ""},
		{"delay and expiry", `{` + ok + `,"delay":"1m","expiry":1900000000}`, 400, ""},
		{"all three", `{` + ok + `,"at":"2030-01-02T03:04:05Z","delay":"1m","expiry":1900000000}`, 400, ""},
		{"at not RFC 3339", `{` + ok + `,"at":"tomorrow"}`, 400, "at"},
		{"at without zone", `{` + ok + `,"at":"2030-01-02T03:04:05"}`, 400, "at"},
		{"at a number", `{` + ok + `,"at":1900000000}`, 400, "at"},
		{"at in year 10000 in UTC", `{` + ok + `,"at":"9999-12-31T23:59:59-01:00"}`, 400, "at"},
		{"at in year 1", `{` + ok + `,"at":"0001-01-01T00:00:00Z"}`, 400, "at"},
		{"at before 1970", `{` + ok + `,"at":"1969-12-31T23:59:59Z"}`, 400, "at"},
		{"expiry after year 9999", `{` + ok + `,"expiry":999999999999999}`, 400, "expiry"},
		{"delay not a duration", `{` + ok + `,"delay":"soon"}`, 400, "delay"},
		{"delay negative", `{` + ok + `,"delay":"-1s"}`, 400, "delay"},
		{"delay a number", `{` + ok + `,"delay":90}`, 400, "delay"},
		{"expiry not a number", `{` + ok + `,"expiry":"soon"}`, 400, "expiry"},
		{"expiry negative", `{` + ok + `,"expiry":-1}`, 400, "expiry"},
		{"expiry huge", `{` + ok + `,"expiry":1e300}`, 400, "expiry"},
		{"max_attempts a string", `{` + ok + `,"delay":"1m","max_attempts":"x"}`, 400, "max_attempts"},
		{"max_attempts fractional", `{` + ok + `,"delay":"1m","max_attempts":1.5}`, 400, "max_attempts"},
		{"max_attempts zero", `{` + ok + `,"delay":"1m","max_attempts":0}`, 400, "max_attempts"},
		{"max_attempts too many", `{` + ok + `,"delay":"1m","max_attempts":1000}`, 400, "max_attempts"},
		{"max_attempts huge", `{` + ok + `,"delay":"1m","max_attempts":99999999999999999999}`, 400, "max_attempts"},
		{"timeout not a duration", `{` + ok + `,"delay":"1m","timeout":"x"}`, 400, "timeout"},
		{"timeout zero", `{` + ok + `,"delay":"1m","timeout":"0s"}`, 400, "timeout"},
		{"timeout too long", `{` + ok + `,"delay":"1m","timeout":"1h"}`, 400, "timeout"},
		{"timeout an object", `{` + ok + `,"delay":"1m","timeout":{}}`, 400, "timeout"},
		{"min_backoff above max_backoff", `{` + ok + `,"delay":"1m","min_backoff":"2m","max_backoff":"1m"}`, 400, "min_backoff"},
		{"max_backoff negative", `{` + ok + `,"delay":"1m","max_backoff":"-1s"}`, 400, "max_backoff"},
		{"flow_key with a space", `{` + ok + `,"delay":"1m","flow_key":"a b"}`, 400, "flow_key"},
		{"flow_key with a slash", `{` + ok + `,"delay":"1m","flow_key":"a/b"}`, 400, "flow_key"},
		{"flow_key not ASCII", `{` + ok + `,"delay":"1m","flow_key":"é"}`, 400, "flow_key"},
		{"flow_key too long", `{` + ok + `,"delay":"1m","flow_key":"` + strings.Repeat("k", 129) + `"}`, 400, "flow_key"},
		{"flow_key a number", `{` + ok + `,"delay":"1m","flow_key":7}`, 400, "flow_key"},
		{"app a number", `{"app":1,"id":"x1","url":"https://example.com/hook","delay":"1m"}`, 400, "app"},
		{"app missing", `{"id":"x1","url":"https://example.com/hook","delay":"1m"}`, 400, "app"},
		{"app with a space", `{"app":"my shop","id":"x1","url":"https://example.com/hook","delay":"1m"}`, 400, "app"},
		{"app with a slash", `{"app":"a/b","id":"x1","url":"https://example.com/hook","delay":"1m"}`, 400, "app"},
		{"app too long", `{"app":"` + strings.Repeat("a", 65) + `","id":"x1","url":"https://example.com/hook","delay":"1m"}`, 400, "app"},
		{"id with a slash", `{"app":"shop","id":"a/b","url":"https://example.com/hook","delay":"1m"}`, 400, "id"},
		{"id with a space", `{"app":"shop","id":"a b","url":"https://example.com/hook","delay":"1m"}`, 400, "id"},
		{"id with a newline", `{"app":"shop","id":"a\nb","url":"https://example.com/hook","delay":"1m"}`, 400, "id"},
		{"id not ASCII", `{"app":"shop","id":"é","url":"https://example.com/hook","delay":"1m"}`, 400, "id"},
		{"id too long", `{"app":"shop","id":"` + strings.Repeat("a", 129) + `","url":"https://example.com/hook","delay":"1m"}`, 400, "id"},
		{"id a number", `{"app":"shop","id":7,"url":"https://example.com/hook","delay":"1m"}`, 400, "id"},
		{"url missing", `{"app":"shop","id":"x1","delay":"1m"}`, 400, "url"},
		{"url ftp", `{"app":"shop","id":"x1","url":"ftp://example.com/f","delay":"1m"}`, 400, "url"},
		{"url relative", `{"app":"shop","id":"x1","url":"/hook","delay":"1m"}`, 400, "url"},
		{"url without host", `{"app":"shop","id":"x1","url":"http://","delay":"1m"}`, 400, "url"},
		{"url not a URL", `{"app":"shop","id":"x1","url":"http://exa mple.com/%zz","delay":"1m"}`, 400, "url"},
		{"url with credentials", `{"app":"shop","id":"x1","url":"https://u:p@example.com/","delay":"1m"}`, 400, "url"},
		{"method unknown", `{` + ok + `,"delay":"1m","method":"TRACE"}`, 400, "method"},
		{"method CONNECT", `{` + ok + `,"delay":"1m","method":"CONNECT"}`, 400, "method"},
		{"method a number", `{` + ok + `,"delay":"1m","method":1}`, 400, "method"},
		{"headers a list", `{` + ok + `,"delay":"1m","headers":["X-A: 1"]}`, 400, "headers"},
		{"header value CR LF", `{` + ok + `,"delay":"1m","headers":{"X-A":"1\r\nX-Evil: 2"}}`, 400, "headers"},
		{"header value LF", `{` + ok + `,"delay":"1m","headers":{"X-A":"1\nb"}}`, 400, "headers"},
		{"header value CR", `{` + ok + `,"delay":"1m","headers":{"X-A":"1\rb"}}`, 400, "headers"},
		{"header value NUL", `{` + ok + `,"delay":"1m","headers":{"X-A":"1\u0000"}}`, 400, "headers"},
		{"header name with a space", `{` + ok + `,"delay":"1m","headers":{"X A":"1"}}`, 400, "headers"},
		{"header name with a colon", `{` + ok + `,"delay":"1m","headers":{"X-A:":"1"}}`, 400, "headers"},
		{"header name empty", `{` + ok + `,"delay":"1m","headers":{"":"1"}}`, 400, "headers"},
		{"body over 1 MiB", `{` + ok + `,"delay":"1m","body":"` + strings.Repeat("a", 1<<20+1) + `"}`, 413, "body"},
		{"body object over 1 MiB", `{` + ok + `,"delay":"1m","body":{"a":"` + strings.Repeat("a", 1<<20) + `"}}`, 413, "body"},
		{"request far over the limit", `{` + ok + `,"delay":"1m","body":"` + strings.Repeat("a", 4<<20) + `"}`, 413, ""},
	}
	b := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, http.MethodPost, "/v1/events", tt.body)
			e := wantError(t, r, tt.status, "")
			if tt.field != "" && e["field"] != tt.field {
				// A nested field (headers.X-A) names its top-level field too.
				if f, _ := e["field"].(string); !strings.HasPrefix(f, tt.field+".") {
					t.Errorf("error.field = %v, want %q: %s", e["field"], tt.field, r.body)
				}
			}
		})
	}
	// None of them stored anything.
	wantError(t, b.do(t, http.MethodGet, "/v1/events/shop/x1", nil), http.StatusNotFound, "")
}

// The due time given as none or several of at/delay/expiry names one of them.
func TestCreateDueFieldNamed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, body := range []string{
		`{"app":"shop","id":"x1","url":"https://example.com/hook"}`,
		`{"app":"shop","id":"x1","url":"https://example.com/hook","at":"2030-01-02T03:04:05Z","delay":"1m"}`,
	} {
		e := wantError(t, b.do(t, http.MethodPost, "/v1/events", body), http.StatusBadRequest, "")
		if f := e["field"]; f != "at" && f != "delay" && f != "expiry" {
			t.Errorf("field = %v, want at, delay or expiry", f)
		}
	}
}

func TestBodyAtTheLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := strings.Repeat("a", 1<<20)
	r := b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "big", "url": "https://example.com/hook", "delay": "1m", "body": body,
	})
	wantStatus(t, r, http.StatusCreated)
	if got, _ := obj(t, r)["body"].(string); got != body {
		t.Errorf("body of %d bytes came back as %d bytes", len(body), len(got))
	}
	// Escaping may double a body's size in the request; it still fits.
	quoted := strings.Repeat(`"`, 1<<20)
	r = b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "quoted", "url": "https://example.com/hook", "delay": "1m", "body": quoted,
	})
	wantStatus(t, r, http.StatusCreated)
}

func TestBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "old", "url": "https://example.com/hook", "at": "2030-01-02T03:04:05.000Z",
	}), http.StatusCreated)

	r := b.do(t, http.MethodPost, "/v1/events/batch", `{"events":[
		{"app":"shop","id":"b1","url":"https://example.com/hook","delay":"1m"},
		{"app":"shop","id":"old","url":"https://example.com/hook","at":"2030-01-02T03:04:05.000Z"},
		{"app":"shop","id":"b3","url":"ftp://example.com","delay":"1m"},
		{"app":"shop","id":"old","url":"https://example.com/other","at":"2030-01-02T03:04:05.000Z"},
		{"app":"shop","id":"b5","url":"https://example.com/hook","delay":"1m","max_attempts":"x"},
		7,
		{"app":"shop","url":"https://example.com/hook","expiry":1900000000},
		{"app":"shop","id":"b1","url":"https://example.com/hook","delay":"1m"},
		{"app":"shop","id":"b3","url":"https://example.com/hook","delay":"1m","body":"`+strings.Repeat("a", 1<<20+1)+`"},
		{"app":"shop","id":"b1","url":"https://example.com/elsewhere","delay":"1m"}
	]}`)
	wantStatus(t, r, http.StatusOK)
	m := obj(t, r)
	if len(m) != 1 {
		t.Errorf("batch body has more than results: %v", m)
	}
	results, _ := m["results"].([]any)
	want := []struct {
		status int
		id     string // the event's id, for 2xx
		field  string // the error's field, for 4xx ("" unchecked)
	}{
		{201, "b1", ""},
		{200, "old", ""},
		{400, "", "url"},
		{409, "", ""},
		{400, "", "max_attempts"},
		{400, "", ""},
		{201, "", ""},
		{200, "b1", ""},
		{413, "", "body"},
		{409, "", ""},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(results), len(want), r.body)
	}
	for i, w := range want {
		res, _ := results[i].(map[string]any)
		if res["status"] != float64(w.status) {
			t.Errorf("result %d: status %v, want %d: %v", i, res["status"], w.status, res)
			continue
		}
		if w.status < 300 {
			ev, _ := res["event"].(map[string]any)
			if ev == nil || res["error"] != nil {
				t.Errorf("result %d: want an event and no error: %v", i, res)
				continue
			}
			wantEvent(t, ev)
			if w.id != "" && ev["id"] != w.id {
				t.Errorf("result %d: id %v, want %s", i, ev["id"], w.id)
			}
			if ev["id"] == "" {
				t.Errorf("result %d: no id generated", i)
			}
			continue
		}
		e, _ := res["error"].(map[string]any)
		if e == nil || res["event"] != nil || e["code"] == "" || e["message"] == "" {
			t.Errorf("result %d: want an error object and no event: %v", i, res)
			continue
		}
		if w.field != "" && e["field"] != w.field {
			t.Errorf("result %d: field %v, want %s", i, e["field"], w.field)
		}
	}
	// The stored events are those the results say.
	ev := obj(t, b.do(t, http.MethodGet, "/v1/events/shop/old", nil))
	if ev["url"] != "https://example.com/hook" {
		t.Errorf("a 409 item overwrote the event: %v", ev)
	}
	wantStatus(t, b.do(t, http.MethodGet, "/v1/events/shop/b1", nil), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/events/shop/b3", nil), http.StatusNotFound)
}

func TestBatchShape(t *testing.T) {
	t.Parallel()
	item := func(i int) string {
		return fmt.Sprintf(`{"app":"shop","id":"n%d","url":"https://example.com/hook","delay":"1m"}`, i)
	}
	items := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = item(i)
		}
		return `{"events":[` + strings.Join(s, ",") + `]}`
	}
	tests := []struct {
		name   string
		body   string
		status int
		n      int // results, for 200
	}{
		{"empty list", `{"events":[]}`, 200, 0},
		{"one", items(1), 200, 1},
		{"1000", items(1000), 200, 1000},
		{"1001", items(1001), 413, 0},
		{"no events key", `{}`, 400, 0},
		{"events null", `{"events":null}`, 400, 0},
		{"events not a list", `{"events":{"a":1}}`, 400, 0},
		{"not JSON", `[`, 400, 0},
		{"a list", `[]`, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			r := b.do(t, http.MethodPost, "/v1/events/batch", tt.body)
			if tt.status != 200 {
				if tt.status == 413 && r.code == 400 {
					tt.status = 400 // API.md allows either for an oversized batch
				}
				wantError(t, r, tt.status, "")
				return
			}
			wantStatus(t, r, 200)
			results, ok := obj(t, r)["results"].([]any)
			if !ok || len(results) != tt.n {
				t.Fatalf("results: %d (list: %v), want %d: %.300s", len(results), ok, tt.n, r.body)
			}
			for i, res := range results {
				if st := res.(map[string]any)["status"]; st != float64(201) {
					t.Fatalf("result %d: status %v", i, st)
				}
			}
		})
	}
}

// finish drives a due event through one failed attempt, as a worker would.
func finish(t *testing.T, b *bundle, app, id string, st scheduler.Status, code int) {
	t.Helper()
	ctx := context.Background()
	for shard := range b.store.Shards() {
		c, err := b.store.Claim(ctx, shard, "w1", 10, time.Minute, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range c.Events {
			if ev.App != app || ev.ID != id {
				t.Fatalf("claimed unexpected event %s/%s", ev.App, ev.ID)
			}
			ok, err := b.store.Finish(ctx, scheduler.Lease{App: app, ID: id, Worker: "w1", Attempt: ev.Attempts}, scheduler.Outcome{
				Status:  st,
				Attempt: scheduler.Attempt{Attempt: ev.Attempts, At: time.Now().UnixMilli(), StatusCode: code, DurationMS: 12, Worker: "w1", Response: "nope"},
			}, time.Time{})
			if err != nil || !ok {
				t.Fatalf("finish: %v %v", ok, err)
			}
			return
		}
	}
	t.Fatalf("event %s/%s was not due", app, id)
}

func TestGetCancelRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	create := func(id, due string) {
		t.Helper()
		wantStatus(t, b.do(t, http.MethodPost, "/v1/events", `{"app":"shop","id":"`+id+`","url":"https://example.com/hook",`+due+`}`), http.StatusCreated)
	}
	create("p1", `"delay":"1h"`)
	create("c1", `"delay":"1h"`)
	create("f1", `"expiry":1000`)
	finish(t, b, "shop", "f1", scheduler.StatusFailed, 404)

	type step struct {
		name, method, path string
		status             int
		evStatus           string // for 200
	}
	steps := []step{
		{"get pending", http.MethodGet, "/v1/events/shop/p1", 200, "PENDING"},
		{"get unknown", http.MethodGet, "/v1/events/shop/nope", 404, ""},
		{"get unknown app", http.MethodGet, "/v1/events/other/p1", 404, ""},
		{"get invalid app", http.MethodGet, "/v1/events/bad%20app/p1", 404, ""},
		{"get failed", http.MethodGet, "/v1/events/shop/f1", 200, "FAILED"},
		{"retry pending", http.MethodPost, "/v1/events/shop/p1/retry", 409, ""},
		{"retry unknown", http.MethodPost, "/v1/events/shop/nope/retry", 404, ""},
		{"cancel pending", http.MethodDelete, "/v1/events/shop/c1", 200, "CANCELLED"},
		{"get cancelled", http.MethodGet, "/v1/events/shop/c1", 200, "CANCELLED"},
		{"cancel again", http.MethodDelete, "/v1/events/shop/c1", 409, ""},
		{"cancel unknown", http.MethodDelete, "/v1/events/shop/nope", 404, ""},
		{"cancel failed", http.MethodDelete, "/v1/events/shop/f1", 409, ""},
		{"retry cancelled", http.MethodPost, "/v1/events/shop/c1/retry", 200, "PENDING"},
		{"retry it again", http.MethodPost, "/v1/events/shop/c1/retry", 409, ""},
		{"cancel it again", http.MethodDelete, "/v1/events/shop/c1", 200, "CANCELLED"},
		{"retry failed", http.MethodPost, "/v1/events/shop/f1/retry", 200, "PENDING"},
	}
	for _, s := range steps {
		r := b.do(t, s.method, s.path, nil)
		if s.status != 200 {
			wantError(t, r, s.status, "")
			continue
		}
		if r.code != 200 {
			t.Fatalf("%s: status %d: %s", s.name, r.code, r.body)
		}
		m := obj(t, r)
		wantEvent(t, m)
		if m["status"] != s.evStatus {
			t.Errorf("%s: status %v, want %s", s.name, m["status"], s.evStatus)
		}
		if s.evStatus == "PENDING" && strings.HasSuffix(s.path, "/retry") && m["attempts"] != float64(0) {
			t.Errorf("%s: attempts %v after retry, want 0", s.name, m["attempts"])
		}
	}

	// The retried event keeps its history, in the v1 and the Cassata shape.
	m := obj(t, b.do(t, http.MethodGet, "/v1/events/shop/f1", nil))
	hist, _ := m["history"].([]any)
	if len(hist) != 1 {
		t.Fatalf("history = %v, want one attempt", m["history"])
	}
	h := hist[0].(map[string]any)
	if h["attempt"] != float64(1) || h["status_code"] != float64(404) || h["duration_ms"] != float64(12) || !rfc3339Millis.MatchString(fmt.Sprint(h["at"])) {
		t.Errorf("history[0] = %v", h)
	}
	c := obj(t, b.do(t, http.MethodGet, "/cassata/event/shop/f1", nil))
	logs, _ := c["eventLogs"].([]any)
	if len(logs) != 1 {
		t.Fatalf("eventLogs = %v", c["eventLogs"])
	}
	l := logs[0].(map[string]any)
	for _, k := range []string{"httpResponseCode", "httpResponse", "lastUpdated"} {
		if _, ok := l[k]; !ok {
			t.Errorf("eventLogs[0] lacks %s: %v", k, l)
		}
	}
	if l["httpResponseCode"] != float64(404) {
		t.Errorf("eventLogs[0] = %v", l)
	}
}

// Every v1 time is RFC 3339 with milliseconds in UTC, including history.
func TestTimesFormat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, http.MethodPost, "/v1/events", `{"app":"shop","id":"t1","url":"https://example.com/hook","expiry":1000}`)
	wantStatus(t, r, http.StatusCreated)
	finish(t, b, "shop", "t1", scheduler.StatusServiceUnavailable, 503)
	r = b.do(t, http.MethodGet, "/v1/events/shop/t1", nil)
	timeish := regexp.MustCompile(`"(\d{4}-[^"]*)"`)
	for _, m := range timeish.FindAllStringSubmatch(string(r.body), -1) {
		if !rfc3339Millis.MatchString(m[1]) {
			t.Errorf("time %q is not RFC 3339 with milliseconds, UTC", m[1])
		}
	}
	var ev map[string]any
	_ = json.Unmarshal(r.body, &ev)
	if ev["status"] != "SERVICE_UNAVAILABLE" || ev["due_at"] != "1970-01-01T00:16:40.000Z" {
		t.Errorf("event = %s", r.body)
	}
}

// Ids may hold characters that need escaping in a path.
func TestIDsInPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct{ id, escaped string }{
		{"a?b", "a%3Fb"},
		{"a#b", "a%23b"},
		{"a%b", "a%25b"},
		{"a.b_c-d~e:f@g", "a.b_c-d~e:f@g"},
		{"{tag}", "%7Btag%7D"},
		{"batch", "batch"},
		{"retry", "retry"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			r := b.do(t, http.MethodPost, "/v1/events", map[string]any{"app": "shop", "id": tt.id, "url": "https://example.com/hook", "delay": "1m"})
			wantStatus(t, r, http.StatusCreated)
			g := b.do(t, http.MethodGet, "/v1/events/shop/"+tt.escaped, nil)
			wantStatus(t, g, http.StatusOK)
			if obj(t, g)["id"] != tt.id {
				t.Errorf("GET returned %s", g.body)
			}
			wantStatus(t, b.do(t, http.MethodGet, "/cassata/status/shop/"+tt.escaped, nil), http.StatusOK)
			wantStatus(t, b.do(t, http.MethodDelete, "/v1/events/shop/"+tt.escaped, nil), http.StatusOK)
			wantStatus(t, b.do(t, http.MethodPost, "/v1/events/shop/"+tt.escaped+"/retry", nil), http.StatusOK)
		})
	}
	// An app named like a route segment.
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{"app": "batch", "id": "x", "url": "https://example.com/hook", "delay": "1m"}), http.StatusCreated)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/events/batch/x", nil), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodDelete, "/v1/events/batch/x", nil), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events/batch/x/retry", nil), http.StatusOK)
}

// Bodies are bytes: NUL, invalid UTF-8 and non-ASCII survive create, get and cancel.
func TestBinaryishBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"escaped NUL", `"a\u0000b"`, "a\x00b"},
		{"non-ASCII", `"héllo ✓"`, "héllo ✓"},
		{"raw invalid UTF-8 in an object", "{\"s\":\"\xff\xfe\"}", "{\"s\":\"\xff\xfe\"}"},
	}
	b := setup(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("bin%d", i)
			r := b.do(t, http.MethodPost, "/v1/events", `{"app":"shop","id":"`+id+`","url":"https://example.com/hook","delay":"1m","body":`+tt.body+`}`)
			wantStatus(t, r, http.StatusCreated)
			ev, err := b.sched.Get(context.Background(), "shop", id)
			if err != nil || string(ev.Body) != tt.want {
				t.Errorf("stored body = %q (%v), want %q", ev.Body, err, tt.want)
			}
			wantStatus(t, b.do(t, http.MethodGet, "/v1/events/shop/"+id, nil), http.StatusOK)
			wantStatus(t, b.do(t, http.MethodGet, "/cassata/event/shop/"+id, nil), http.StatusOK)
			wantStatus(t, b.do(t, http.MethodDelete, "/v1/events/shop/"+id, nil), http.StatusOK)
			wantStatus(t, b.do(t, http.MethodPost, "/v1/events/shop/"+id+"/retry", nil), http.StatusOK)
			wantStatus(t, b.do(t, http.MethodGet, "/cassata/delete/shop/"+id, nil), http.StatusOK)
		})
	}
}
