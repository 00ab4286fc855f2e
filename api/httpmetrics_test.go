package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/api"
)

// sample is the value of the series name{labels} in reg (-1 when absent).
func sample(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// TestHTTPMetricsMiddleware: requests are counted by route template, never
// the raw path (bounded cardinality), unknown paths as "unmatched", odd
// methods as OTHER; 401/403 and 429 also count as refusals, which exist at
// 0 before the first one.
func TestHTTPMetricsMiddleware(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := api.NewHTTPMetrics(reg)
	for _, s := range []struct {
		name   string
		labels map[string]string
	}{
		{"cassata_auth_refusals_total", map[string]string{"code": "401"}},
		{"cassata_auth_refusals_total", map[string]string{"code": "403"}},
		{"cassata_rate_limited_total", nil},
	} {
		if v := sample(t, reg, s.name, s.labels); v != 0 {
			t.Errorf("%s%v before any request = %v, want 0", s.name, s.labels, v)
		}
	}

	r := gin.New()
	r.Use(m.Middleware())
	status := func(c *gin.Context) {
		code, _ := strconv.Atoi(c.Query("code"))
		c.Status(code)
	}
	r.Any("/things/:id", status)
	r.Handle("BREW", "/things/:id", status)
	for _, req := range []struct{ method, target string }{
		{http.MethodGet, "/things/1?code=200"},
		{http.MethodGet, "/things/2?code=200"},
		{http.MethodGet, "/things/3?code=401"},
		{http.MethodPost, "/things/4?code=403"},
		{http.MethodPost, "/things/5?code=429"},
		{"BREW", "/things/6?code=200"},
		{http.MethodGet, "/scan/a1"},
		{http.MethodGet, "/scan/a2"},
	} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.target, nil))
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"cassata_http_requests_total", map[string]string{"route": "/things/:id", "method": "GET", "code": "200"}, 2},
		{"cassata_http_requests_total", map[string]string{"route": "/things/:id", "method": "GET", "code": "401"}, 1},
		{"cassata_http_requests_total", map[string]string{"route": "/things/:id", "method": "OTHER", "code": "200"}, 1},
		{"cassata_http_requests_total", map[string]string{"route": api.UnmatchedRoute, "method": "GET", "code": "404"}, 2},
		{"cassata_http_request_duration_seconds", map[string]string{"route": "/things/:id", "method": "POST"}, 2},
		{"cassata_auth_refusals_total", map[string]string{"code": "401"}, 1},
		{"cassata_auth_refusals_total", map[string]string{"code": "403"}, 1},
		{"cassata_rate_limited_total", nil, 1},
	}
	for _, w := range want {
		if v := sample(t, reg, w.name, w.labels); v != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.value)
		}
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "route" && strings.Contains(l.GetValue(), "/things/1") {
					t.Errorf("a raw path became a label: %v", mm)
				}
			}
		}
	}
}

// TestEngineRecordsRoutes: API.Engine puts the middleware in front of
// every route, the process endpoints and the refusals of authentication.
func TestEngineRecordsRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t) // for a scheduler
	reg := prometheus.NewRegistry()
	a := api.New(api.Config{Scheduler: b.sched, Gatherer: reg, HTTPMetrics: api.NewHTTPMetrics(reg), Logger: slog.New(slog.DiscardHandler)})
	h := a.Engine(api.TokenAuth("secret"))
	for _, target := range []string{"/healthz", "/v1/events/shop/a", "/v1/events/shop/b"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	}
	if v := sample(t, reg, "cassata_http_requests_total", map[string]string{"route": "/healthz", "method": "GET", "code": "200"}); v != 1 {
		t.Errorf("healthz requests = %v, want 1", v)
	}
	if v := sample(t, reg, "cassata_http_requests_total", map[string]string{"route": "/v1/events/:app/:id", "method": "GET", "code": "401"}); v != 2 {
		t.Errorf("unauthenticated event reads = %v, want 2", v)
	}
	if v := sample(t, reg, "cassata_auth_refusals_total", map[string]string{"code": "401"}); v != 2 {
		t.Errorf("auth refusals = %v, want 2", v)
	}
}

// TestStarting: while a process connects, /healthz is 200, /readyz 503
// naming what is missing, /metrics served, and every other route (known or
// not, any method) a 503 JSON error in its family's shape.
func TestStarting(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := api.Starting(api.StartingConfig{Missing: func() []string { return []string{"redis"} }, Gatherer: reg, HTTPMetrics: api.NewHTTPMetrics(reg)})
	do := func(method, target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, target, strings.NewReader(`{}`)))
		return w
	}
	if w := do(http.MethodGet, "/healthz"); w.Code != http.StatusOK {
		t.Errorf("/healthz = %d", w.Code)
	}
	w := do(http.MethodGet, "/readyz")
	var rz struct {
		Status   string            `json:"status"`
		Starting bool              `json:"starting"`
		Checks   map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &rz); err != nil || w.Code != http.StatusServiceUnavailable || rz.Status != "unavailable" ||
		!rz.Starting || rz.Checks["redis"] != "connecting" {
		t.Errorf("/readyz = %d %s", w.Code, w.Body)
	}
	if w := do(http.MethodGet, "/metrics"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "cassata_http_requests_total") {
		t.Errorf("/metrics = %d %s", w.Code, w.Body)
	}
	for _, r := range []struct{ method, target string }{
		{http.MethodPost, "/v1/events"}, {http.MethodDelete, "/v1/events/a/b"}, {http.MethodGet, "/admin/"},
		{http.MethodPost, "/healthz"}, {http.MethodGet, "/nothing/here"}, {http.MethodGet, "/cassata/status/a/b"},
	} {
		w := do(r.method, r.target)
		var body struct {
			Status string          `json:"status"` // the Cassata-compatible routes' own field
			Error  api.ErrorDetail `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusServiceUnavailable ||
			body.Error.Code != "unavailable" || !strings.Contains(body.Error.Message, "redis") || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s = %d %s (Retry-After %q), want a 503 JSON error", r.method, r.target, w.Code, w.Body, w.Header().Get("Retry-After"))
		}
		if strings.HasPrefix(r.target, "/cassata/") && body.Status != "failed" {
			t.Errorf("%s %s = %s, want the Cassata routes' shape too", r.method, r.target, w.Body)
		}
	}
}

// TestReadyzReportsArchiveApart: with Config.Archive, /readyz carries the
// archive's state and stays 200 while it is down; only the checks decide.
func TestReadyzReportsArchiveApart(t *testing.T) {
	t.Parallel()
	a := api.New(api.Config{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Ready: func(context.Context) map[string]error { return map[string]error{"redis": nil} },
		Archive: func(context.Context) api.ArchiveState {
			return api.ArchiveState{Configured: true, Up: false, Status: "unavailable", Since: "2026-12-06T18:00:00Z"}
		}})
	r := gin.New()
	a.Process(r)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	want := `{"status":"ok","checks":{"redis":"ok"},"archive":{"configured":true,"up":false,"status":"unavailable","since":"2026-12-06T18:00:00Z"}}`
	var got, wantV any
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	_ = json.Unmarshal([]byte(want), &wantV)
	if w.Code != http.StatusOK || !reflect.DeepEqual(got, wantV) {
		t.Errorf("/readyz = %d %s, want 200 %s", w.Code, w.Body, want)
	}
}
