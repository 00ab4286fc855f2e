package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// sinkPath is the path events are sent to on the sink.
const sinkPath = "/sink"

// arrival is one request the sink received.
type arrival struct {
	At      time.Time // when the handler started, before the body was read
	App     string    // Cassata-Application-Id
	ID      string    // Cassata-Event-Id
	Attempt string    // Cassata-Attempt
}

// key identifies an event the way a destination dedupes it.
func (a arrival) key() string { return a.App + "/" + a.ID }

// sink is the in-process destination every bench event is sent to. It
// records the arrival time and Cassata headers of each request and answers
// 200 at once, so the destination never limits what is measured.
type sink struct {
	mu       sync.Mutex
	arrivals []arrival
	distinct map[string]map[string]struct{} // app → ids seen

	srv *http.Server
	url string
}

func newSink() *sink {
	s := &sink{distinct: make(map[string]map[string]struct{})}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// start listens on a free loopback port and serves in the background.
func (s *sink) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

func (s *sink) record(a arrival) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals = append(s.arrivals, a)
	ids := s.distinct[a.App]
	if ids == nil {
		ids = make(map[string]struct{})
		s.distinct[a.App] = ids
	}
	ids[a.ID] = struct{}{}
}

// reset forgets everything received so far, before a new workload.
func (s *sink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals = nil
	s.distinct = make(map[string]map[string]struct{})
}

// distinctCount is how many different event ids of app have arrived.
func (s *sink) distinctCount(app string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.distinct[app])
}

// snapshot returns a copy of every arrival so far, in arrival order.
func (s *sink) snapshot() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.arrivals...)
}
