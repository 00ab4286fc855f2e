package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/testproc"
)

// cassataProcess is a `cassata server` or `cassata worker` subprocess.
type cassataProcess struct {
	mode string
	*testproc.Proc
}

// startCassata builds cmd/cassata (once) and starts `cassata <mode>` on the
// env's Redis and namespace, listening on a free loopback port (see
// waitAddr), with extra environment settings after the defaults (the last
// setting of a variable wins). A worker gets a short poll interval and its
// own SQLite archive; a server gets CASSATA_AUTH=off. It is killed when the
// test ends. Call it after setup, so that a run without redis-server skips
// before building.
func startCassata(t *testing.T, e *env, mode string, extraEnv ...string) *cassataProcess {
	t.Helper()
	bin, err := testbin.Shared()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"CASSATA_REDIS_URL="+e.redis.URL(),
		"CASSATA_NAMESPACE="+e.ns,
		"CASSATA_BLOCK_PRIVATE=off",
		"CASSATA_LOG_LEVEL=info",
	)
	switch mode {
	case "worker":
		env = append(env,
			"CASSATA_POLL_INTERVAL=200ms",
			"CASSATA_ARCHIVE_DSN=sqlite://"+filepath.Join(t.TempDir(), "archive.db"),
		)
	case "server":
		env = append(env, "CASSATA_AUTH=off")
	}
	return &cassataProcess{mode: mode, Proc: testproc.StartT(t, testproc.Config{
		Name: mode + " process",
		Path: bin,
		Args: []string{mode, "--listen", "127.0.0.1:0"},
		Env:  append(env, extraEnv...),
		// Also ends a stopped (SIGSTOP) process.
		KillOnCleanup: true,
	})}
}

// logField returns the value of key in the first JSON log line whose msg is
// msg, or "" when there is none yet.
func (p *cassataProcess) logField(msg, key string) string {
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != msg {
			continue
		}
		if v, ok := rec[key].(string); ok {
			return v
		}
	}
	return ""
}

// waitLog waits until the process has logged a line with msg carrying key
// and returns key's value; it fails the test when the process exits first.
func (p *cassataProcess) waitLog(t testing.TB, msg, key string, timeout time.Duration) string {
	t.Helper()
	var v string
	waitFor(t, timeout, func() string {
		if v = p.logField(msg, key); v != "" {
			return ""
		}
		if !p.Running() {
			t.Fatalf("%s process exited (%s) before logging %q:\n%s", p.mode, p.State(), msg, p.Output())
		}
		return fmt.Sprintf("%s process has not logged %q with %s yet", p.mode, msg, key)
	})
	return v
}

// baseURL waits until the process listens and returns http://host:port.
func (p *cassataProcess) baseURL(t testing.TB) string {
	t.Helper()
	return "http://" + p.waitLog(t, "listening", "addr", 30*time.Second)
}

// workerID waits until a worker process has started its worker and returns its id.
func (p *cassataProcess) workerID(t testing.TB) string {
	t.Helper()
	return p.waitLog(t, "worker started", "worker", 30*time.Second)
}

// probeClient is the client of process endpoints; short timeouts, so a
// hanging endpoint shows as an error rather than a stuck test.
var probeClient = &http.Client{Timeout: 5 * time.Second, Transport: ownTransport()}

// plainClient is a client without a timeout (requests carry contexts).
var plainClient = &http.Client{Transport: ownTransport()}

// ownTransport is a transport of the tests' own. httptest.Server.Close
// closes the idle connections of http.DefaultTransport, and a parallel test
// that had just taken one of them for a POST saw it fail with "transport
// connection broken: http: CloseIdleConnections called" (the web package's
// TestBulkCancel did, in a run of two suites at once); no test's server
// closes these.
func ownTransport() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() }

// probe GETs path on the process and returns the status code and body.
func (p *cassataProcess) probe(t testing.TB, path string) (int, []byte, error) {
	t.Helper()
	resp, err := probeClient.Get(p.baseURL(t) + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// waitReady waits until the process answers /readyz with 200.
func (p *cassataProcess) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() string {
		if !p.Running() {
			t.Fatalf("%s process exited (%s):\n%s", p.mode, p.State(), p.Output())
		}
		code, body, err := p.probe(t, "/readyz")
		if err != nil || code != http.StatusOK {
			return fmt.Sprintf("%s /readyz: %d %s (err %v)", p.mode, code, body, err)
		}
		return ""
	})
}

// procState returns the state letter of /proc/<pid>/stat ("T" when
// stopped), or "" when it cannot be read.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state ...: comm may hold spaces, so cut after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}
