package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/testproc"
)

// TestReadyzHidesAndLogsErrors: /readyz answers ok/unavailable per
// dependency, never the dependency's error (which names hosts, users,
// paths); the error goes to the log, once per api.ReadyLogEvery while it
// stays the same, at once when it changes, and the recovery is logged.
func TestReadyzHidesAndLogsErrors(t *testing.T) {
	t.Parallel()
	const secret = "dial tcp 10.9.8.7:3306: access denied for user 'cassata'@'db-internal'"
	var mu sync.Mutex
	archiveErr := errors.New(secret)
	setErr := func(err error) { mu.Lock(); archiveErr = err; mu.Unlock() }
	clock := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	logs := &testproc.Buffer{}
	a := api.New(api.Config{Gatherer: prometheus.NewRegistry(), Clock: clock,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Ready: func(context.Context) map[string]error {
			mu.Lock()
			defer mu.Unlock()
			return map[string]error{"redis": nil, "archive": archiveErr}
		}})
	r := gin.New()
	a.Process(r)
	probe := func() (int, string) {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		r.ServeHTTP(w, req)
		checkOpenAPI(t, req, nil, response{code: w.Code, header: w.Header(), body: w.Body.Bytes()})
		return w.Code, w.Body.String()
	}
	logged := func(msg string) int { return strings.Count(logs.String(), `"msg":"`+msg+`"`) }

	steps := []struct {
		name        string
		advance     time.Duration
		err         error
		wantCode    int
		wantArchive string
		wantDown    int // "dependency unavailable" lines so far
		wantUp      int // "dependency available again" lines so far
	}{
		{"first failure is logged", 0, errors.New(secret), 503, "unavailable", 1, 0},
		{"same error a second later: not again", time.Second, errors.New(secret), 503, "unavailable", 1, 0},
		{"same error within the interval: not again", 20 * time.Second, errors.New(secret), 503, "unavailable", 1, 0},
		{"same error after the interval: again", 10 * time.Second, errors.New(secret), 503, "unavailable", 2, 0},
		{"a different error: at once", time.Second, errors.New("database is locked"), 503, "unavailable", 3, 0},
		{"recovered", time.Second, nil, 200, "ok", 3, 1},
		{"still fine: nothing logged", time.Second, nil, 200, "ok", 3, 1},
		{"down again: at once", time.Second, errors.New(secret), 503, "unavailable", 4, 1},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		setErr(s.err)
		code, body := probe()
		if code != s.wantCode {
			t.Fatalf("%s: status %d, want %d: %s", s.name, code, s.wantCode, body)
		}
		if strings.Contains(body, "10.9.8.7") || strings.Contains(body, "denied") || strings.Contains(body, "locked") {
			t.Fatalf("%s: /readyz shows the dependency's error: %s", s.name, body)
		}
		var got struct {
			Checks map[string]string `json:"checks"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v: %s", s.name, err, body)
		}
		if got.Checks["archive"] != s.wantArchive || got.Checks["redis"] != "ok" {
			t.Fatalf("%s: checks %v, want archive %q, redis ok", s.name, got.Checks, s.wantArchive)
		}
		if d, u := logged("readyz: dependency unavailable"), logged("readyz: dependency available again"); d != s.wantDown || u != s.wantUp {
			t.Fatalf("%s: %d unavailable and %d available-again lines, want %d and %d:\n%s", s.name, d, u, s.wantDown, s.wantUp, logs)
		}
	}
	if !strings.Contains(logs.String(), "10.9.8.7:3306") || !strings.Contains(logs.String(), `"dependency":"archive"`) {
		t.Fatalf("the log lacks the error's detail:\n%s", logs)
	}
}

// TestReadyzBodiesMatchTheDocument: the archive's own state and the
// answers while starting are in api/openapi.yaml too.
func TestReadyzBodiesMatchTheDocument(t *testing.T) {
	t.Parallel()
	probe := func(h http.Handler) string {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		h.ServeHTTP(w, req)
		checkOpenAPI(t, req, nil, response{code: w.Code, header: w.Header(), body: w.Body.Bytes()})
		return w.Body.String()
	}
	a := api.New(api.Config{Gatherer: prometheus.NewRegistry(),
		Ready: func(context.Context) map[string]error { return map[string]error{"redis": nil} },
		Archive: func(context.Context) api.ArchiveState {
			return api.ArchiveState{Configured: true, Up: false, Status: "unavailable", Since: "2026-12-06T18:00:00Z"}
		}})
	r := gin.New()
	a.Process(r)
	if body := probe(r); !strings.Contains(body, `"archive":{"configured":true,"up":false`) {
		t.Errorf("/readyz lacks the archive's state: %s", body)
	}
	starting := api.Starting(api.StartingConfig{Missing: func() []string { return []string{"redis"} },
		Gatherer: prometheus.NewRegistry()})
	if body := probe(starting); !strings.Contains(body, `"starting":true`) || !strings.Contains(body, `"redis":"connecting"`) {
		t.Errorf("/readyz while starting: %s", body)
	}
}
