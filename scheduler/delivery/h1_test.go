package delivery

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// The plain-http path (h1.go) replaces net/http's Transport for http
// destinations: these tests pin what the Transport did that a destination
// or the worker would notice.

// TestDeliverCancel: cancelling the context (shutdown, a lost lease) ends
// a delivery blocked on its destination at once, as an abandon, not a
// timeout.
func TestDeliverCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			return
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	d := New(Config{})
	// A first delivery leaves a pooled connection: the cancel must stop a
	// reused one as well as a new one.
	if r := d.Deliver(context.Background(), deliveryEvent(s.srv.URL+"/fast"), 5*time.Second); r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("first delivery: %+v", r)
	}
	for _, name := range []string{"reused connection", "new connection"} {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("worker stopping")) })
		start := time.Now()
		r := d.Deliver(ctx, deliveryEvent(s.srv.URL), 30*time.Second)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%s: Deliver took %v after a cancel at 100ms", name, took)
		}
		if r.Err == nil || !strings.Contains(r.Err.Error(), "abandoned: worker stopping") {
			t.Fatalf("%s: Deliver = %+v, want an abandon naming the cause", name, r)
		}
	}
}

// TestDeliverIdleClosedByDestination: a destination closing an idle
// connection (its keep-alive timeout) costs no failed delivery: the next
// one notices and dials again.
func TestDeliverIdleClosedByDestination(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 20 * time.Millisecond
	startCounting(t, srv, &conns)
	d := New(Config{})
	for i := range 3 {
		ev := deliveryEvent(srv.URL) // POST: never resent on its own
		ev.Body = []byte(`{"i":1}`)
		if r := d.Deliver(context.Background(), ev, 5*time.Second); r.Err != nil || r.StatusCode != 200 {
			t.Fatalf("delivery %d: %+v", i, r)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (each closed by the destination while idle)", n)
	}
}

// rawDestination is a TCP destination whose connections answer their
// first request and hang up on the second without answering: the
// situation of an idle connection closed just as a request is sent. It
// counts the requests it saw, by method.
type rawDestination struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string
}

func newRawDestination(t *testing.T) *rawDestination {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	rd := &rawDestination{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go rd.serve(c)
		}
	}()
	return rd
}

func (rd *rawDestination) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	br := bufio.NewReader(c)
	for n := 0; ; n++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		rd.mu.Lock()
		rd.seen = append(rd.seen, req.Method)
		rd.mu.Unlock()
		if n == 1 {
			return // hang up without an answer
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func (rd *rawDestination) requests() []string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return append([]string(nil), rd.seen...)
}

// TestDeliverResendRules: a request that got no answer on a reused
// connection is sent again on a new one only when replaying it is safe
// (GET, or an Idempotency-Key), as net/http's Transport does; a POST is
// not, and the attempt fails retryably.
func TestDeliverResendRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		resent  bool
	}{
		{name: "GET", method: http.MethodGet, resent: true},
		{name: "POST", method: http.MethodPost, resent: false},
		{name: "POST with Idempotency-Key", method: http.MethodPost, headers: map[string]string{"Idempotency-Key": "k1"}, resent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rd := newRawDestination(t)
			d := New(Config{})
			ev := deliveryEvent("http://" + rd.ln.Addr().String() + "/hook")
			ev.Method, ev.Headers = tt.method, tt.headers
			if tt.method == http.MethodPost {
				ev.Body = []byte(`{"n":1}`)
			}
			if r := d.Deliver(context.Background(), ev, 5*time.Second); r.Err != nil || r.StatusCode != 200 {
				t.Fatalf("first delivery: %+v", r)
			}
			r := d.Deliver(context.Background(), ev, 5*time.Second)
			got := rd.requests()
			if tt.resent {
				if r.Err != nil || r.StatusCode != 200 || len(got) != 3 {
					t.Fatalf("second delivery = %+v after %q, want it resent on a new connection and answered", r, got)
				}
				return
			}
			if r.Err == nil || Classify(r) != scheduler.StatusPending || len(got) != 2 {
				t.Fatalf("second delivery = %+v after %q, want a retryable failure and no resend", r, got)
			}
		})
	}
}

// TestDeliverGzipAnswer: a gzip answer is inflated and its connection
// reused; an event that asks for an encoding itself gets the answer as
// sent, as with net/http.
func TestDeliverGzipAnswer(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, strings.Join(r.Header.Values("Accept-Encoding"), "|"))
		mu.Unlock()
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, "inflated answer")
		_ = zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(b.Bytes())
	}))
	startCounting(t, srv, &conns)
	d := New(Config{})
	for i := range 5 {
		r := d.Deliver(context.Background(), deliveryEvent(srv.URL), 5*time.Second)
		if r.Err != nil || r.StatusCode != 200 || r.Response != "inflated answer" {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("5 gzip answers used %d connections, want 1", n)
	}
	ev := deliveryEvent(srv.URL)
	ev.Headers = map[string]string{"Accept-Encoding": "br, gzip"}
	r := d.Deliver(context.Background(), ev, 5*time.Second)
	if r.Err != nil || r.StatusCode != 200 || r.Response == "inflated answer" {
		t.Fatalf("with the event's own Accept-Encoding: %+v, want the answer as sent (gzip)", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[0] != "gzip" || asked[len(asked)-1] != "br, gzip" {
		t.Fatalf("Accept-Encoding sent: %q, want gzip, then the event's own alone", asked)
	}
}

// TestDeliverInformationalAnswers: 1xx answers before the final one are
// skipped, the final status counts.
func TestDeliverInformationalAnswers(t *testing.T) {
	t.Parallel()
	s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "queued")
	})
	r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
	if r.Err != nil || r.StatusCode != http.StatusAccepted || r.Response != "queued" {
		t.Fatalf("Deliver = %+v, want 202 queued", r)
	}
}

// TestDeliverURLCredentials: credentials in the URL are sent as Basic
// authorization unless the event sets its own Authorization, as
// http.Client does.
func TestDeliverURLCredentials(t *testing.T) {
	t.Parallel()
	s := newSink(t, nil)
	d := New(Config{})
	u := strings.Replace(s.srv.URL, "http://", "http://user:pa55@", 1)
	if r := d.Deliver(context.Background(), deliveryEvent(u), 5*time.Second); r.Err != nil {
		t.Fatalf("Deliver: %v", r.Err)
	}
	ev := deliveryEvent(u)
	ev.Headers = map[string]string{"Authorization": "Bearer own"}
	if r := d.Deliver(context.Background(), ev, 5*time.Second); r.Err != nil {
		t.Fatalf("Deliver: %v", r.Err)
	}
	got := s.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	if user, pass, ok := (&http.Request{Header: got[0].header}).BasicAuth(); !ok || user != "user" || pass != "pa55" {
		t.Errorf("Authorization = %q, want Basic user:pa55", got[0].header.Get("Authorization"))
	}
	if a := got[1].header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer own" {
		t.Errorf("Authorization = %q, want the event's own", a)
	}
}

// TestDeliverHTTPS: https destinations go through net/http's Transport
// (HTTP/2 when the destination offers it); plain http through h1.
func TestDeliverHTTPS(t *testing.T) {
	t.Parallel()
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		_, _ = io.WriteString(w, "secure")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	d := New(Config{})
	// The test server's own CA instead of the system roots.
	d.client.Transport.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	r := d.Deliver(context.Background(), deliveryEvent(srv.URL), 5*time.Second)
	if r.Err != nil || r.StatusCode != 200 || r.Response != "secure" {
		t.Fatalf("Deliver = %+v", r)
	}
	if p, _ := proto.Load().(string); p != "HTTP/2.0" {
		t.Fatalf("proto = %q, want HTTP/2.0", p)
	}
}

// countingTransport is a custom Transport that counts its requests.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

// TestDeliverCustomTransport: a custom Transport carries every delivery,
// plain http included.
func TestDeliverCustomTransport(t *testing.T) {
	t.Parallel()
	s := newSink(t, nil)
	tr := &countingTransport{}
	d := New(Config{Transport: tr})
	if r := d.Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second); r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("Deliver = %+v", r)
	}
	if tr.n.Load() != 1 {
		t.Fatalf("custom transport saw %d requests, want 1", tr.n.Load())
	}
}

// TestDeliverEarlyAnswer: a destination that answers before reading a
// large body and hangs up is recorded with its answer (a 413 is final),
// not as a connection error.
func TestDeliverEarlyAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			_ = c.Close()
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
		// Close with unread body: the deliverer's write fails.
		_ = c.(*net.TCPConn).CloseRead()
		time.Sleep(200 * time.Millisecond)
		_ = c.Close()
	}()
	ev := deliveryEvent("http://" + ln.Addr().String() + "/upload")
	ev.Body = bytes.Repeat([]byte("x"), 8<<20)
	r := New(Config{}).Deliver(context.Background(), ev, 5*time.Second)
	if r.StatusCode != http.StatusRequestEntityTooLarge || r.Response != "too big!" || Classify(r) != scheduler.StatusFailed {
		t.Fatalf("Deliver = %d %q err %v, want the 413 answer", r.StatusCode, r.Response, r.Err)
	}
}

// TestDeliverIdleBound: at most MaxIdleConnsPerHost connections to a
// destination stay open between deliveries; the rest are closed.
func TestDeliverIdleBound(t *testing.T) {
	t.Parallel()
	const concurrent, keep = 5, 2
	var arrived sync.WaitGroup
	arrived.Add(concurrent)
	release := make(chan struct{})
	var open, requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= concurrent {
			arrived.Done()
		}
		<-release
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	d := New(Config{MaxIdleConnsPerHost: keep})
	var done sync.WaitGroup
	for range concurrent {
		done.Go(func() {
			if r := d.Deliver(context.Background(), deliveryEvent(srv.URL), 5*time.Second); r.Err != nil || r.StatusCode != 200 {
				t.Errorf("Deliver = %+v", r)
			}
		})
	}
	arrived.Wait() // five connections at once
	close(release)
	done.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != keep && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n != keep {
		t.Fatalf("%d connections open after the deliveries, want %d (MaxIdleConnsPerHost)", n, keep)
	}
	// The kept ones are reused.
	for range 3 {
		if r := d.Deliver(context.Background(), deliveryEvent(srv.URL), 5*time.Second); r.Err != nil {
			t.Fatalf("Deliver: %v", r.Err)
		}
	}
	if n := open.Load(); n != keep {
		t.Fatalf("%d connections open after more deliveries, want the %d kept ones reused", n, keep)
	}
}

// TestDeliverIdleTimeout: connections left unused for the idle timeout are
// closed, without a delivery to notice.
func TestDeliverIdleTimeout(t *testing.T) {
	t.Parallel()
	var open atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	d := New(Config{})
	d.h1.idleTimeout = 100 * time.Millisecond
	if r := d.Deliver(context.Background(), deliveryEvent(srv.URL), 5*time.Second); r.Err != nil {
		t.Fatalf("Deliver: %v", r.Err)
	}
	if n := open.Load(); n != 1 {
		t.Fatalf("%d connections open right after the delivery, want 1 kept alive", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := open.Load(); n != 0 {
		t.Fatalf("%d connections still open long after the idle timeout", n)
	}
	d.h1.mu.Lock()
	defer d.h1.mu.Unlock()
	if d.h1.nIdle != 0 || len(d.h1.idle) != 0 || d.h1.sweeping {
		t.Fatalf("pool after the sweep: %d idle, %d destinations, sweeping %v; want it empty", d.h1.nIdle, len(d.h1.idle), d.h1.sweeping)
	}
}

// TestDeliverExpiredDeadlineKeepsPool: a delivery whose deadline has
// passed before it reaches the pool (a 1ms timeout, which events may have,
// or signing that took the time) fails as a timeout without closing the
// destination's idle connections: the liveness probe fails on the past
// deadline, not on the connection.
func TestDeliverExpiredDeadlineKeepsPool(t *testing.T) {
	t.Parallel()
	const warm = 4
	var conns atomic.Int32
	var arrived sync.WaitGroup
	arrived.Add(warm)
	release := make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if requests.Add(1) <= warm {
			arrived.Done()
			<-release
		}
	}))
	startCounting(t, srv, &conns)
	d := New(Config{MaxIdleConnsPerHost: 8})
	var done sync.WaitGroup
	for range warm {
		done.Go(func() { d.Deliver(context.Background(), deliveryEvent(srv.URL), 5*time.Second) })
	}
	arrived.Wait() // four connections at once
	close(release)
	done.Wait()
	if r := d.Deliver(context.Background(), deliveryEvent(srv.URL), time.Nanosecond); r.Err == nil || !strings.Contains(r.Err.Error(), "timeout") {
		t.Fatalf("Deliver with an expired deadline = %+v, want a timeout", r)
	}
	d.h1.mu.Lock()
	idle := d.h1.nIdle
	d.h1.mu.Unlock()
	if idle != warm {
		t.Fatalf("%d idle connections after a delivery whose deadline had passed, want the %d kept", idle, warm)
	}
}
