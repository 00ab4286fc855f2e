package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/testproc"
)

// redisServer returns redis-server's path, skipping the test without it
// (failing instead under redistest.RequireEnv).
func redisServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("redis-server not found and %s=1: %v", redistest.RequireEnv, err)
		}
		t.Skip("redis-server not installed")
	}
	return bin
}

// freePort is a loopback port nothing listens on (yet).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// proc is a cassata process under test.
type proc struct {
	*testproc.Proc
	base string // http://host:port, once listening
}

// startCassata starts `cassata <mode>` with exactly env and waits until it
// logs "listening" (not until it is ready: that is what the tests look at).
func startCassata(t *testing.T, bin, mode string, env []string) *proc {
	t.Helper()
	p := &proc{Proc: testproc.StartT(t, testproc.Config{Name: "cassata " + mode, Path: bin, Args: []string{mode},
		Env: env, Dir: t.TempDir(), KillOnCleanup: true})}
	deadline := time.Now().Add(30 * time.Second)
	for p.base == "" {
		if !p.Running() {
			t.Fatalf("cassata %s exited before listening (%s):\n%s", mode, p.State(), p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("cassata %s does not listen after 30s:\n%s", mode, p.Output())
		}
		sc := bufio.NewScanner(strings.NewReader(p.Output()))
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "listening" {
				p.base = "http://" + rec["addr"].(string)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

var client = &http.Client{Timeout: 5 * time.Second}

// do sends a request and returns the status, the body and the headers.
func (p *proc) do(t *testing.T, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v (the process should answer at once)", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// waitRedisUp polls /readyz until its redis check is ok and returns the
// body, which must then be a 503 (the archive is down).
func (p *proc) waitRedisUp(t *testing.T) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, _ := p.do(t, http.MethodGet, "/readyz", "")
		var rz map[string]any
		if json.Unmarshal([]byte(body), &rz) == nil {
			if checks, _ := rz["checks"].(map[string]any); checks["redis"] == "ok" {
				if code != http.StatusServiceUnavailable {
					t.Fatalf("/readyz with the archive down: %d %s, want 503", code, body)
				}
				return rz
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never saw Redis: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReadyz polls /readyz until it answers 200 and returns the body.
func (p *proc) waitReadyz(t *testing.T) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, _ := p.do(t, http.MethodGet, "/readyz", "")
		if code == http.StatusOK {
			var m map[string]any
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				t.Fatalf("/readyz: %v: %s", err, body)
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after 30s: %s\n%s", code, body, p.Tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metric returns the value of the sample named exactly sample ("" when absent).
func (p *proc) metric(t *testing.T, sample string) string {
	t.Helper()
	_, body, _ := p.do(t, http.MethodGet, "/metrics", "")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// startRedis starts redis-server on port for t.
func startRedis(t *testing.T, redisBin string, port int) {
	t.Helper()
	dir := t.TempDir()
	r := testproc.StartT(t, testproc.Config{Name: "redis-server", Path: redisBin, Dir: dir,
		Args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--logfile", ""}})
	addr := testproc.LoopbackAddr(port)
	if err := r.WaitReady(t.Context(), redistest.StartTimeout, testproc.TCP(addr)); err != nil {
		t.Fatalf("redis-server on %s: %v\n%s", addr, err, r.Output())
	}
}

// TestListensBeforeRedis: server, worker and dev (given a Redis URL) listen
// before Redis is up.
// Meanwhile /healthz answers 200 (a liveness probe must not restart them
// in a loop), /readyz 503 naming Redis, and every other route a 503 JSON
// error in API.md's shape, at once. Once redis-server starts on the port
// they become ready by themselves and the API works. The archive (a MySQL
// address where nothing listens) is down throughout: it never holds up
// readiness, and /readyz, cassata_archive_up say so.
func TestListensBeforeRedis(t *testing.T) {
	t.Parallel()
	redisBin := redisServer(t)
	bin := testbin.BuildT(t)

	for _, mode := range []string{"server", "worker", "dev"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			redisPort := freePort(t)
			env := []string{"PATH=/usr/local/bin:/usr/bin:/bin",
				"CASSATA_REDIS_URL=redis://" + testproc.LoopbackAddr(redisPort) + "/0",
				"CASSATA_LISTEN=127.0.0.1:0",
				"CASSATA_ADMIN_TOKEN=operability-test-token", "CASSATA_LOG_FORMAT=json",
				"CASSATA_ARCHIVE_DSN=mysql://cassata:pw@" + testproc.LoopbackAddr(freePort(t)) + "/cassata"}
			p := startCassata(t, bin, mode, env)

			// Before Redis.
			if code, body, _ := p.do(t, http.MethodGet, "/healthz", ""); code != http.StatusOK {
				t.Fatalf("/healthz while starting: %d %s", code, body)
			}
			code, body, _ := p.do(t, http.MethodGet, "/readyz", "")
			var ready struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusServiceUnavailable ||
				ready.Status != "unavailable" || ready.Checks["redis"] != "connecting" {
				t.Fatalf("/readyz while starting: %d %s, want 503 with checks.redis connecting", code, body)
			}
			routes := []struct{ method, path string }{
				{http.MethodPost, "/v1/events"}, {http.MethodGet, "/v1/events/shop/x"},
				{http.MethodGet, "/cassata/status/shop/x"}, {http.MethodGet, "/no/such/route"},
			}
			for _, r := range routes {
				code, body, h := p.do(t, r.method, r.path, `{}`, "Content-Type", "application/json")
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusServiceUnavailable ||
					e.Error.Code != "unavailable" || !strings.Contains(e.Error.Message, "redis") || h.Get("Retry-After") == "" {
					t.Errorf("%s %s while starting: %d %s (Retry-After %q), want a 503 JSON error naming redis",
						r.method, r.path, code, body, h.Get("Retry-After"))
				}
			}
			if !hasBuildInfo(p.metricsText(t)) {
				t.Errorf("cassata_build_info missing while starting:\n%s", p.metricsText(t))
			}

			// Redis comes up: a server is ready without a restart, the
			// archive still down; a worker and dev, whose duty archiving is,
			// stay unready naming the archive (API.md §2) while they run.
			startRedis(t, redisBin, redisPort)
			var rz map[string]any
			if mode == "server" {
				rz = p.waitReadyz(t)
			} else {
				rz = p.waitRedisUp(t)
				if checks, _ := rz["checks"].(map[string]any); checks["archive"] == nil || checks["archive"] == "ok" {
					t.Fatalf("/readyz of a %s with the archive down: %v, want the archive check failing", mode, rz)
				}
			}
			arch, _ := rz["archive"].(map[string]any)
			if checks, _ := rz["checks"].(map[string]any); checks["redis"] != "ok" || arch["up"] != false || arch["status"] != "unavailable" {
				t.Fatalf("/readyz with the archive down: %v, want redis ok, archive up false", rz)
			}
			if v := p.metric(t, "cassata_archive_up"); v != "0" {
				t.Errorf("cassata_archive_up = %q, want 0", v)
			}
			if mode != "server" {
				return
			}
			auth := []string{"Content-Type", "application/json", "Authorization", "Bearer operability-test-token"}
			create := `{"app":"shop","id":"listen-1","url":"https://example.com/hook","delay":"1h"}`
			if code, body, _ := p.do(t, http.MethodPost, "/v1/events", create, auth...); code != http.StatusCreated {
				t.Fatalf("create once ready: %d %s", code, body)
			}
			if code, body, _ := p.do(t, http.MethodGet, "/v1/events/shop/listen-1", "", auth...); code != http.StatusOK || !strings.Contains(body, `"PENDING"`) {
				t.Fatalf("read once ready: %d %s", code, body)
			}
			if code, body, _ := p.do(t, http.MethodGet, "/v1/events/shop/listen-1", ""); code != http.StatusUnauthorized {
				t.Fatalf("read without a key: %d %s, want 401", code, body)
			}
			if code, body, _ := p.do(t, http.MethodPost, "/v1/events", `{"app":"shop","id":"listen-2","url":"http://127.0.0.1:9/x","delay":"1h"}`, auth...); code != http.StatusBadRequest {
				t.Fatalf("create to loopback: %d %s, want 400 (SSRF guard)", code, body)
			}
			want := map[string]string{
				`cassata_http_requests_total{code="201",method="POST",route="/v1/events"}`:         "1",
				`cassata_http_requests_total{code="200",method="GET",route="/v1/events/:app/:id"}`: "1",
				`cassata_auth_refusals_total{code="401"}`:                                          "1",
				`cassata_auth_refusals_total{code="403"}`:                                          "0",
				`cassata_rate_limited_total`:                                                       "0",
				`cassata_ssrf_refusals_total{stage="create"}`:                                      "1",
				`cassata_ssrf_refusals_total{stage="delivery"}`:                                    "0",
				`cassata_deliveries_total{outcome="failed"}`:                                       "0",
				`cassata_archive_up`:                                                               "0",
				`cassata_pending_events`:                                                           "1",
			}
			for sample, v := range want {
				if got := p.metric(t, sample); got != v {
					t.Errorf("%s = %q, want %s", sample, got, v)
				}
			}
		})
	}
}

// metricsText is the whole /metrics page.
func (p *proc) metricsText(t *testing.T) string {
	t.Helper()
	_, body, _ := p.do(t, http.MethodGet, "/metrics", "")
	return body
}

// hasBuildInfo reports whether a /metrics page has cassata_build_info with
// its three labels at 1.
func hasBuildInfo(page string) bool {
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "cassata_build_info{") && strings.Contains(line, `commit="`) &&
			strings.Contains(line, `go_version="go`) && strings.Contains(line, `version="`) && strings.HasSuffix(line, "} 1") {
			return true
		}
	}
	return false
}
