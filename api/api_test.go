package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/store/redisstore"
)

// quietRedis drops go-redis's own log lines (dial failures in outage tests).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

// fakeClock is a settable scheduler.Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// bundle is what a test needs: the API over a scheduler over a redisstore on miniredis.
type bundle struct {
	mr      *miniredis.Miniredis
	rdb     redis.UniversalClient
	store   *redisstore.Store
	sched   *scheduler.Scheduler
	clock   *fakeClock
	reg     *prometheus.Registry
	handler http.Handler
}

type setupOpts struct {
	auth  api.Authorizer
	ready func(ctx context.Context) map[string]error
	// guard and limits configure the scheduler (hostile_test.go).
	guard  *delivery.AddressGuard
	limits scheduler.Limits
}

func setup(t testing.TB) *bundle { return setupWith(t, setupOpts{}) }

func setupWith(t testing.TB, o setupOpts) *bundle {
	t.Helper()
	store, mr := storetest.Miniredis(t, redisstore.Config{Namespace: "apitest"})
	// A clock in the recent past, at a whole millisecond, so delays give exact due times.
	clock := &fakeClock{now: time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)}
	sched := scheduler.New(store, scheduler.Config{Clock: clock, Guard: o.guard, Limits: o.limits})
	reg := prometheus.NewRegistry()
	metrics := scheduler.NewMetrics(reg)
	a := api.New(api.Config{Scheduler: sched, Ready: o.ready, Gatherer: reg, Metrics: metrics,
		Logger: slog.New(slog.DiscardHandler)})
	return &bundle{mr: mr, rdb: store.Client(), store: store, sched: sched, clock: clock, reg: reg, handler: a.Engine(o.auth)}
}

// response is a recorded HTTP response.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) String() string { return string(r.body) }

// do sends a request. body: nil for none, a string or []byte sent verbatim,
// anything else as JSON. hdr is a list of name, value pairs. The response
// (and an accepted request) must match api/openapi.yaml (openapi_test.go).
func (b *bundle) do(t testing.TB, method, path string, body any, hdr ...string) response {
	t.Helper()
	var raw []byte
	switch v := body.(type) {
	case nil:
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	default:
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		raw = j
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(raw))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	sent := req.Clone(req.Context())
	w := httptest.NewRecorder()
	b.handler.ServeHTTP(w, req)
	r := response{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
	checkOpenAPI(t, sent, raw, r)
	return r
}

// obj decodes a JSON object body.
func obj(t testing.TB, r response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// wantStatus fails the test when the status differs.
func wantStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("status = %d, want %d; body: %s", r.code, want, r.body)
	}
}

// wantJSON fails the test unless the body is JSON equal to want.
func wantJSON(t testing.TB, r response, want string) {
	t.Helper()
	var got, exp any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	g, _ := json.Marshal(got)
	e, _ := json.Marshal(exp)
	if !bytes.Equal(g, e) {
		t.Fatalf("body = %s, want %s", r.body, want)
	}
}

// wantError checks the v1 error body: {"error":{"code","message","field"}},
// with field equal to wantField ("" when the field is not checked, "-" when
// it must be absent). It returns the error object.
func wantError(t testing.TB, r response, status int, wantField string) map[string]any {
	t.Helper()
	wantStatus(t, r, status)
	m := obj(t, r)
	e, ok := m["error"].(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("body is not an error body: %s", r.body)
	}
	if c, _ := e["code"].(string); c == "" {
		t.Errorf("error.code is empty: %s", r.body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error.message is empty: %s", r.body)
	}
	f, hasField := e["field"]
	switch wantField {
	case "":
	case "-":
		if hasField && f != "" {
			t.Errorf("error.field = %v, want none: %s", f, r.body)
		}
	default:
		if f != wantField {
			t.Errorf("error.field = %v, want %q: %s", f, wantField, r.body)
		}
	}
	return e
}

var rfc3339Millis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func fmtMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func TestProcessEndpoints(t *testing.T) {
	t.Parallel()
	ready := func(err error) func(context.Context) map[string]error {
		return func(context.Context) map[string]error { return map[string]error{"redis": nil, "archive": err} }
	}
	tests := []struct {
		name     string
		opts     setupOpts
		path     string
		want     int
		wantBody string // JSON; "" skips the check
	}{
		{name: "healthz", path: "/healthz", want: http.StatusOK, wantBody: `{"status":"ok"}`},
		{name: "readyz without checks", path: "/readyz", want: http.StatusOK, wantBody: `{"status":"ok"}`},
		{name: "readyz all ok", opts: setupOpts{ready: ready(nil)}, path: "/readyz", want: http.StatusOK,
			wantBody: `{"status":"ok","checks":{"redis":"ok","archive":"ok"}}`},
		{name: "readyz archive down", opts: setupOpts{ready: ready(errors.New("dial tcp: refused"))}, path: "/readyz",
			want: http.StatusServiceUnavailable, wantBody: `{"status":"unavailable","checks":{"redis":"ok","archive":"unavailable"}}`},
		{name: "healthz with auth on", opts: setupOpts{auth: api.TokenAuth("secret")}, path: "/healthz", want: http.StatusOK},
		{name: "readyz with auth on", opts: setupOpts{auth: api.TokenAuth("secret")}, path: "/readyz", want: http.StatusOK},
		{name: "metrics with auth on", opts: setupOpts{auth: api.TokenAuth("secret")}, path: "/metrics", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, tt.opts)
			r := b.do(t, http.MethodGet, tt.path, nil)
			wantStatus(t, r, tt.want)
			if tt.wantBody != "" {
				wantJSON(t, r, tt.wantBody)
			}
		})
	}
}

func TestReadyzFollowsRedis(t *testing.T) {
	t.Parallel()
	var b *bundle
	b = setupWith(t, setupOpts{ready: func(ctx context.Context) map[string]error {
		return map[string]error{"redis": b.store.Ping(ctx)}
	}})
	wantStatus(t, b.do(t, http.MethodGet, "/readyz", nil), http.StatusOK)
	b.mr.Close()
	r := b.do(t, http.MethodGet, "/readyz", nil)
	wantStatus(t, r, http.StatusServiceUnavailable)
	if m := obj(t, r); m["status"] != "unavailable" {
		t.Errorf("readyz body = %s", r.body)
	}
	wantStatus(t, b.do(t, http.MethodGet, "/healthz", nil), http.StatusOK)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, http.MethodGet, "/metrics", nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want Prometheus text format", ct)
	}
	if !strings.Contains(r.String(), "cassata_") {
		t.Fatalf("metrics lack cassata_ metrics:\n%s", r.body)
	}

	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "m1", "url": "https://example.com/hook", "delay": "1m",
	}), http.StatusCreated)
	wantStatus(t, b.do(t, http.MethodPost, "/cassata/add", map[string]any{
		"event-id": "m2", "application-id": "shop", "url": "https://example.com/hook", "expiry": 1900000000,
	}), http.StatusOK)
	r = b.do(t, http.MethodGet, "/metrics", nil)
	for _, line := range []string{
		`cassata_events_scheduled_total{route="v1"} 1`,
		`cassata_events_scheduled_total{route="cassata"} 1`,
	} {
		if !strings.Contains(r.String(), line) {
			t.Errorf("metrics lack %q:\n%s", line, r.body)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/v1/events/shop", http.StatusNotFound},
		{http.MethodGet, "/v1/events/shop/a/b", http.StatusNotFound},
		{http.MethodPost, "/v2/events", http.StatusNotFound},
		{http.MethodGet, "/cassata/add/x/y", http.StatusNotFound},
		{http.MethodPut, "/v1/events", http.StatusMethodNotAllowed},
		{http.MethodPatch, "/v1/events/shop/a", http.StatusMethodNotAllowed},
	}
	b := setup(t)
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			wantError(t, b.do(t, tt.method, tt.path, nil), tt.want, "")
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setupWith(t, setupOpts{auth: api.TokenAuth("secret")})
	create := func(id string) map[string]any {
		return map[string]any{"app": "shop", "id": id, "url": "https://example.com/hook", "delay": "1m"}
	}
	add := func(id string) map[string]any {
		return map[string]any{"event-id": id, "application-id": "shop", "url": "https://example.com/hook", "expiry": 1900000000}
	}
	tests := []struct {
		name         string
		method, path string
		body         any
		authz        string // Authorization header; "" sends none
		want         int
	}{
		{"v1 create without token", http.MethodPost, "/v1/events", create("a1"), "", http.StatusUnauthorized},
		{"v1 create with wrong token", http.MethodPost, "/v1/events", create("a2"), "Bearer nope", http.StatusUnauthorized},
		{"v1 create with token as basic", http.MethodPost, "/v1/events", create("a3"), "Basic secret", http.StatusUnauthorized},
		{"v1 create with empty bearer", http.MethodPost, "/v1/events", create("a4"), "Bearer ", http.StatusUnauthorized},
		{"v1 create with token prefix", http.MethodPost, "/v1/events", create("a5"), "Bearer secre", http.StatusUnauthorized},
		{"v1 create with token", http.MethodPost, "/v1/events", create("ok1"), "Bearer secret", http.StatusCreated},
		{"v1 get without token", http.MethodGet, "/v1/events/shop/ok1", nil, "", http.StatusUnauthorized},
		{"v1 get with token", http.MethodGet, "/v1/events/shop/ok1", nil, "Bearer secret", http.StatusOK},
		{"v1 delete without token", http.MethodDelete, "/v1/events/shop/ok1", nil, "", http.StatusUnauthorized},
		{"v1 retry without token", http.MethodPost, "/v1/events/shop/ok1/retry", nil, "", http.StatusUnauthorized},
		{"v1 batch without token", http.MethodPost, "/v1/events/batch", map[string]any{"events": []any{}}, "", http.StatusUnauthorized},
		{"cassata add without token", http.MethodPost, "/cassata/add", add("c1"), "", http.StatusUnauthorized},
		{"cassata add with wrong token", http.MethodPost, "/cassata/add", add("c2"), "Bearer nope", http.StatusUnauthorized},
		{"cassata add with token", http.MethodPost, "/cassata/add", add("ok2"), "Bearer secret", http.StatusOK},
		{"cassata status without token", http.MethodGet, "/cassata/status/shop/ok2", nil, "", http.StatusUnauthorized},
		{"cassata status with token", http.MethodGet, "/cassata/status/shop/ok2", nil, "Bearer secret", http.StatusOK},
		{"cassata delete without token", http.MethodDelete, "/cassata/delete/shop/ok2", nil, "", http.StatusUnauthorized},
		{"healthz without token", http.MethodGet, "/healthz", nil, "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.authz != "" {
				hdr = []string{"Authorization", tt.authz}
			}
			r := b.do(t, tt.method, tt.path, tt.body, hdr...)
			if tt.want == http.StatusUnauthorized {
				wantError(t, r, http.StatusUnauthorized, "")
				if r.header.Get("WWW-Authenticate") == "" && tt.authz == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				return
			}
			wantStatus(t, r, tt.want)
		})
	}
	// Refused requests stored nothing.
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5", "c1", "c2"} {
		if _, err := b.sched.Get(context.Background(), "shop", id); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("event %s exists after a refused create (err %v)", id, err)
		}
	}
}

func TestRedisOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": "shop", "id": "before", "url": "https://example.com/hook", "delay": "1m",
	}), http.StatusCreated)
	b.mr.Close()

	tests := []struct {
		name         string
		method, path string
		body         any
		cassata      bool
	}{
		{"v1 create", http.MethodPost, "/v1/events", map[string]any{"app": "shop", "id": "x", "url": "https://example.com/hook", "delay": "1m"}, false},
		{"v1 batch", http.MethodPost, "/v1/events/batch", map[string]any{"events": []any{
			map[string]any{"app": "shop", "id": "y", "url": "https://example.com/hook", "delay": "1m"},
		}}, false},
		{"v1 get", http.MethodGet, "/v1/events/shop/before", nil, false},
		{"v1 delete", http.MethodDelete, "/v1/events/shop/before", nil, false},
		{"v1 retry", http.MethodPost, "/v1/events/shop/before/retry", nil, false},
		{"cassata add", http.MethodPost, "/cassata/add", map[string]any{
			"event-id": "z", "application-id": "shop", "url": "https://example.com/hook", "expiry": 1900000000}, true},
		{"cassata delete", http.MethodDelete, "/cassata/delete/shop/before", nil, true},
		{"cassata status", http.MethodGet, "/cassata/status/shop/before", nil, true},
		{"cassata event", http.MethodGet, "/cassata/event/shop/before", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, tt.method, tt.path, tt.body)
			wantStatus(t, r, http.StatusServiceUnavailable)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			m := obj(t, r)
			if tt.cassata {
				if m["status"] != "failed" {
					t.Errorf("cassata 503 body lacks status failed: %s", r.body)
				}
			} else if len(m) != 1 {
				t.Errorf("v1 503 body is not just the error body: %s", r.body)
			}
			if e, _ := m["error"].(map[string]any); e == nil || e["code"] == "" || e["message"] == "" {
				t.Errorf("503 body lacks the error object: %s", r.body)
			}
		})
	}
}

func TestRedisRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr := b.mr.Addr()
	b.mr.Close()
	ev := map[string]any{"app": "shop", "id": "later", "url": "https://example.com/hook", "delay": "1m"}
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", ev), http.StatusServiceUnavailable)
	// Redis comes back empty, scripts lost: creates work again, single and batched.
	if err := b.mr.StartAddr(addr); err != nil {
		t.Skipf("cannot restart miniredis on %s: %v", addr, err)
	}
	b.mr.FlushAll()
	if err := b.rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", ev), http.StatusCreated)
	r := b.do(t, http.MethodPost, "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"app": "shop", "id": "later2", "url": "https://example.com/hook", "delay": "1m"},
	}})
	wantStatus(t, r, http.StatusOK)
	if got := obj(t, r)["results"].([]any)[0].(map[string]any)["status"]; got != float64(http.StatusCreated) {
		t.Errorf("batch after restart: %s", r.body)
	}
}

func TestBatchAfterScriptFlush(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	r := b.do(t, http.MethodPost, "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"app": "shop", "id": "f1", "url": "https://example.com/hook", "delay": "1m"},
		map[string]any{"app": "shop", "id": "f2", "url": "https://example.com/hook", "delay": "1m"},
	}})
	wantStatus(t, r, http.StatusOK)
	for i, res := range obj(t, r)["results"].([]any) {
		if st := res.(map[string]any)["status"]; st != float64(http.StatusCreated) {
			t.Errorf("result %d: status %v: %s", i, st, r.body)
		}
	}
}
