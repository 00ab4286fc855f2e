package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cassata/cassata/internal/testproc"
)

// sinkCommand is the hidden subcommand that runs the sink: the bench
// starts its own binary again with it, so the sink is a process of its own.
const sinkCommand = "sink"

// runSinkCommand is `cassata-bench sink --listen ADDR`: it serves the sink
// on ADDR until SIGTERM or SIGINT.
func runSinkCommand(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("cassata-bench sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "loopback address to serve the sink on (host:port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *listen == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: cassata-bench sink --listen 127.0.0.1:PORT")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := newSink()
	if err := s.start(*listen); err != nil {
		fmt.Fprintln(stderr, "cassata-bench sink:", err)
		return 1
	}
	<-ctx.Done()
	s.close()
	return 0
}

// sinkClient is the bench's side of the sink process: it starts it,
// mirrors its arrival log (fetching the new arrivals whenever it is asked
// about them) and clears it between workloads.
type sinkClient struct {
	proc *testproc.Proc
	base string // http://127.0.0.1:port
	hc   *http.Client

	mu       sync.Mutex // serialises fetches so the mirror stays in order
	mirror   *arrivalLog
	lastWarn time.Time
}

// startSink starts `<this binary> sink` on a free loopback port, its log
// under dir, and waits until it answers.
func startSink(ctx context.Context, dir string) (*sinkClient, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sink: find the bench's own binary: %w", err)
	}
	var lastErr error
	for attempt := range deployAttempts {
		port, err := testproc.FreePort()
		if err != nil {
			return nil, fmt.Errorf("pick sink port: %w", err)
		}
		addr := testproc.LoopbackAddr(port)
		p, err := startProcess("sink", exe, []string{sinkCommand, "--listen", addr}, os.Environ(),
			filepath.Join(dir, "sink-"+strconv.Itoa(attempt)+".log"))
		if err != nil {
			return nil, err
		}
		c := &sinkClient{proc: p, base: "http://" + addr, mirror: newArrivalLog(),
			hc: &http.Client{Timeout: 30 * time.Second}}
		if lastErr = p.WaitReady(ctx, readyTimeout, testproc.HTTP(c.base+healthPath)); lastErr == nil {
			slog.Info("sink ready", "addr", addr, "pid", p.Pid())
			return c, nil
		}
		p.Stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("sink: %w", lastErr)
}

// URL is the address events should be sent to.
func (c *sinkClient) URL() string { return c.base + sinkPath }

// stop stops the sink process.
func (c *sinkClient) stop() {
	if c == nil {
		return
	}
	c.hc.CloseIdleConnections()
	c.proc.Stop()
}

// fetch appends the arrivals the mirror lacks.
func (c *sinkClient) fetch() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp, err := c.hc.Get(c.base + arrivalsPath + "?from=" + strconv.Itoa(c.mirror.len()))
	if err != nil {
		return fmt.Errorf("sink: fetch arrivals: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sink: fetch arrivals: %s", resp.Status)
	}
	as, err := readArrivals(resp.Body)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	c.mirror.record(as...)
	return nil
}

// sync fetches the new arrivals; when that fails (the sink process died,
// which the deployment's liveness check reports), it logs at most once a
// second and the callers work with what the mirror has.
func (c *sinkClient) sync() {
	err := c.fetch()
	if err == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.lastWarn) > time.Second {
		c.lastWarn = time.Now()
		slog.Warn("reading the sink's arrivals failed", "err", err)
	}
}

// reset clears the sink's arrivals and the mirror, before a new workload.
func (c *sinkClient) reset() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp, err := c.hc.Post(c.base+resetPath, "", nil)
	if err != nil {
		return fmt.Errorf("sink: reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sink: reset: %s", resp.Status)
	}
	c.mirror.reset()
	return nil
}

// waitCount waits until the sink has seen want distinct event ids of app,
// or timeout, and returns how many it has: one request, so waiting costs
// the sink (whose CPU is measured) nothing per delivery.
func (c *sinkClient) waitCount(ctx context.Context, app string, want int, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	u := c.base + waitPath + "?" + url.Values{"app": {app}, "n": {strconv.Itoa(want)},
		"timeout": {max(0, timeout).String()}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("sink: wait: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("sink: wait: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("sink: wait: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("sink: wait: answer %q: %w", b, err)
	}
	return n, nil
}

// distinctCount is how many different event ids of app have arrived.
func (c *sinkClient) distinctCount(app string) int {
	c.sync()
	return c.mirror.distinctCount(app)
}

// countSuffix is how many different event ids of app ending in suffix
// have arrived.
func (c *sinkClient) countSuffix(app, suffix string) int {
	c.sync()
	return c.mirror.countSuffix(app, suffix)
}

// snapshot returns a copy of every arrival so far, in arrival order.
func (c *sinkClient) snapshot() []arrival {
	c.sync()
	return c.mirror.snapshot()
}
