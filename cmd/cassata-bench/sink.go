package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Paths of the sink: deliveries go to sinkPath; the bench reads the
// arrivals back from arrivalsPath and clears them with resetPath.
const (
	sinkPath     = "/sink"
	arrivalsPath = "/arrivals"
	resetPath    = "/reset"
	waitPath     = "/wait"

	// maxWaitTimeout bounds one GET /wait.
	maxWaitTimeout = time.Minute
	healthPath     = "/healthz"
)

// arrival is one request the sink received.
type arrival struct {
	At      time.Time // when the handler started, before the body was read
	App     string    // Cassata-Application-Id
	ID      string    // Cassata-Event-Id
	Attempt string    // Cassata-Attempt
}

// key identifies an event the way a destination dedupes it.
func (a arrival) key() string { return a.App + "/" + a.ID }

// arrivalLog is every arrival in order, and the distinct event ids per app.
// The sink process keeps one; the bench mirrors it (sinkClient).
type arrivalLog struct {
	mu       sync.Mutex
	arrivals []arrival
	distinct map[string]map[string]struct{} // app → ids seen
	waiters  []countWaiter
}

// countWaiter is a waitCount waiting for want distinct ids of app; done
// is closed when they are there.
type countWaiter struct {
	app  string
	want int
	done chan struct{}
}

func newArrivalLog() *arrivalLog {
	return &arrivalLog{distinct: make(map[string]map[string]struct{})}
}

func (l *arrivalLog) record(as ...arrival) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range as {
		l.arrivals = append(l.arrivals, a)
		ids := l.distinct[a.App]
		if ids == nil {
			ids = make(map[string]struct{})
			l.distinct[a.App] = ids
		}
		ids[a.ID] = struct{}{}
	}
	// Only the waiters whose count is reached wake up, so a waiting bench
	// costs the sink nothing per delivery.
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		if len(l.distinct[w.app]) >= w.want {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	l.waiters = kept
}

// waitCount waits until want distinct ids of app have arrived, or timeout,
// or ctx ends, and returns how many have.
func (l *arrivalLog) waitCount(ctx context.Context, app string, want int, timeout time.Duration) int {
	l.mu.Lock()
	if n := len(l.distinct[app]); n >= want {
		l.mu.Unlock()
		return n
	}
	w := countWaiter{app: app, want: want, done: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiters = slices.DeleteFunc(l.waiters, func(x countWaiter) bool { return x.done == w.done })
	return len(l.distinct[app])
}

// reset forgets everything received so far, before a new workload.
func (l *arrivalLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrivals = nil
	l.distinct = make(map[string]map[string]struct{})
	// Waiters stay: they wait for arrivals of the next workload, if any.
}

// distinctCount is how many different event ids of app have arrived.
func (l *arrivalLog) distinctCount(app string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.distinct[app])
}

// countSuffix is how many different event ids of app ending in suffix have
// arrived. It walks every id of app, so callers use it sparingly.
func (l *arrivalLog) countSuffix(app, suffix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id := range l.distinct[app] {
		if strings.HasSuffix(id, suffix) {
			n++
		}
	}
	return n
}

// snapshot returns a copy of every arrival so far, in arrival order.
func (l *arrivalLog) snapshot() []arrival { return l.since(0) }

// since returns a copy of the arrivals from index from on.
func (l *arrivalLog) since(from int) []arrival {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from >= len(l.arrivals) {
		return nil
	}
	return append([]arrival(nil), l.arrivals[max(0, from):]...)
}

func (l *arrivalLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.arrivals)
}

// sink is the destination every bench event is sent to. It runs in a
// process of its own (`cassata-bench sink`, started by startSink), so the
// CPU it spends is accounted to it, not to the bench. It records the
// arrival time and Cassata headers of each request and answers 200 at
// once, so the destination never limits what is measured.
type sink struct {
	*arrivalLog

	srv *http.Server
	url string
}

func newSink() *sink {
	s := &sink{arrivalLog: newArrivalLog()}
	mux := http.NewServeMux()
	mux.HandleFunc(sinkPath, s.deliver)
	mux.HandleFunc("GET "+arrivalsPath, s.serveArrivals)
	mux.HandleFunc("GET "+waitPath, s.serveWait)
	mux.HandleFunc("POST "+resetPath, func(w http.ResponseWriter, _ *http.Request) { s.reset() })
	mux.HandleFunc("GET "+healthPath, func(w http.ResponseWriter, _ *http.Request) {})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// start listens on addr ("127.0.0.1:0" for a free port) and serves in the
// background.
func (s *sink) start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sink listen: %w", err)
	}
	s.url = "http://" + ln.Addr().String() + sinkPath
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// Deliveries will go missing from here on, and the report
			// says so; the log says why.
			slog.Error("sink stopped", "err", err)
		}
	}()
	return nil
}

// URL is the address events should be sent to.
func (s *sink) URL() string { return s.url }

func (s *sink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

func (s *sink) deliver(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	a := arrival{
		At:      now,
		App:     r.Header.Get("Cassata-Application-Id"),
		ID:      r.Header.Get("Cassata-Event-Id"),
		Attempt: r.Header.Get("Cassata-Attempt"),
	}
	s.record(a)
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
}

// serveArrivals answers GET /arrivals?from=N with the arrivals from index
// N on, in the format of writeArrivals.
func (s *sink) serveArrivals(w http.ResponseWriter, r *http.Request) {
	from, err := strconv.Atoi(r.URL.Query().Get("from"))
	if err != nil || from < 0 {
		http.Error(w, "from: want a non-negative index", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	bw := bufio.NewWriter(w)
	if err := writeArrivals(bw, s.since(from)); err == nil {
		_ = bw.Flush()
	}
}

// serveWait answers GET /wait?app=A&n=N&timeout=D with the number of
// distinct ids of app that have arrived, once that is at least N or after
// D (a Go duration, at most maxWaitTimeout): the bench waits for the end
// of a workload without polling.
func (s *sink) serveWait(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		http.Error(w, "n: want a non-negative count", http.StatusBadRequest)
		return
	}
	timeout, err := time.ParseDuration(q.Get("timeout"))
	if err != nil || timeout < 0 || timeout > maxWaitTimeout {
		http.Error(w, "timeout: want a duration from 0 to "+maxWaitTimeout.String(), http.StatusBadRequest)
		return
	}
	got := s.waitCount(r.Context(), q.Get("app"), n, timeout)
	_, _ = io.WriteString(w, strconv.Itoa(got))
}

// writeArrivals writes one line per arrival: the arrival time in Unix
// nanoseconds (wall clock: the sink and the bench share the machine's
// clock, and due times are wall-clock times), then app, id and attempt,
// tab-separated and query-escaped so no field holds a tab or newline.
func writeArrivals(w io.Writer, as []arrival) error {
	var line []byte
	for _, a := range as {
		line = strconv.AppendInt(line[:0], a.At.UnixNano(), 10)
		for _, f := range []string{a.App, a.ID, a.Attempt} {
			line = append(line, '\t')
			line = append(line, url.QueryEscape(f)...)
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

// readArrivals parses what writeArrivals wrote.
func readArrivals(r io.Reader) ([]arrival, error) {
	var as []arrival
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("arrival line %d: %d fields, want 4", n, len(f))
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("arrival line %d: time: %w", n, err)
		}
		a := arrival{At: time.Unix(0, ns)}
		for i, dst := range []*string{&a.App, &a.ID, &a.Attempt} {
			if *dst, err = url.QueryUnescape(f[i+1]); err != nil {
				return nil, fmt.Errorf("arrival line %d: field %d: %w", n, i+2, err)
			}
		}
		as = append(as, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read arrivals: %w", err)
	}
	return as, nil
}
