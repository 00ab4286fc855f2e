package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/testproc"
)

// cassataProc is a cassata subprocess.
type cassataProc struct {
	name string
	*testproc.Proc
}

// startProc starts bin with args and exactly env (nothing of the test's
// own environment leaks in), in a fresh working directory; it is killed
// when the test ends and its output shown if the test failed.
func startProc(t *testing.T, name, bin string, args, env []string) *cassataProc {
	t.Helper()
	return &cassataProc{name: name, Proc: testproc.StartT(t, testproc.Config{
		Name:          name + " (cassata " + strings.Join(args, " ") + ")",
		Path:          bin,
		Args:          args,
		Env:           env,
		Dir:           t.TempDir(), // dev's SQLite archive goes there
		KillOnCleanup: true,
	})}
}

// logged returns key of the first JSON log line with msg ("" : none yet).
func (p *cassataProc) logged(msg, key string) string {
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			if v, ok := rec[key].(string); ok {
				return v
			}
		}
	}
	return ""
}

// waitFor polls cond (which says what it still waits for, "" when done)
// until timeout, failing the test when the process exits first.
func (p *cassataProc) waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if !p.Running() {
			t.Fatalf("%s exited (%s)", p.name, p.State())
		}
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %s: %s", p.name, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// baseURL waits for the process to listen and returns http://host:port.
func (p *cassataProc) baseURL(t *testing.T) string {
	t.Helper()
	var addr string
	p.waitFor(t, 30*time.Second, func() string {
		if addr = p.logged("listening", "addr"); addr == "" {
			return "not listening yet"
		}
		return ""
	})
	return "http://" + strings.Replace(addr, "[::]", "127.0.0.1", 1)
}

var probeClient = &http.Client{Timeout: 5 * time.Second,
	// The admin UI redirects; the tests look at each answer.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get returns the status and body of GET path.
func (p *cassataProc) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := probeClient.Get(p.baseURL(t) + path)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), resp.Header
}

// waitReady waits until /readyz answers 200.
func (p *cassataProc) waitReady(t *testing.T) {
	t.Helper()
	p.waitFor(t, 30*time.Second, func() string {
		if code, body, _ := p.get(t, "/readyz"); code != http.StatusOK {
			return fmt.Sprintf("/readyz %d %s", code, body)
		}
		return ""
	})
}
