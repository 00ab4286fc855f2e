package delivery

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/version"
	"github.com/cassata/cassata/scheduler"
)

// received is what a test destination saw of one request.
type received struct {
	method, host, path string
	header             http.Header
	body               []byte
	transferEncoding   []string
	contentLength      int64
}

// sink is an httptest server that records every request and answers with
// the handler it is given (200 when nil).
type sink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
}

func newSink(t *testing.T, answer http.HandlerFunc) *sink {
	t.Helper()
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, received{method: r.Method, host: r.Host, path: r.URL.Path, header: r.Header.Clone(),
			body: body, transferEncoding: r.TransferEncoding, contentLength: r.ContentLength})
		s.mu.Unlock()
		if answer != nil {
			answer(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func deliveryEvent(url string) *scheduler.Event {
	return &scheduler.Event{App: "shop", ID: "order-7", URL: url, Method: "POST", Attempts: 1}
}

func TestDeliverHeaders(t *testing.T) {
	t.Parallel()
	s := newSink(t, nil)
	d := New(Config{})
	ev := deliveryEvent(s.srv.URL + "/hook")
	ev.Attempts = 3
	ev.Body = []byte(`{"n":1}`)
	ev.Headers = map[string]string{
		"X-Custom":            "value",
		"authorization":       "Bearer t",
		"Connection":          "close",
		"Host":                "evil.example",
		"Transfer-Encoding":   "chunked",
		"Content-Length":      "999",
		"Keep-Alive":          "timeout=5",
		"Upgrade":             "websocket",
		"Te":                  "trailers",
		"Trailer":             "X-T",
		"Proxy-Authorization": "Basic x",
		"Proxy-Connection":    "keep-alive",
		"User-Agent":          "spoofed",
		"Cassata-Attempt":     "99",
	}
	r := d.Deliver(context.Background(), ev, 5*time.Second)
	if r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("Deliver = %+v", r)
	}
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	got := reqs[0]
	want := map[string]string{
		"User-Agent":             "cassata/" + version.Get().Version,
		"Cassata-Application-Id": "shop",
		"Cassata-Event-Id":       "order-7",
		"Cassata-Attempt":        "3",
		"Content-Type":           "application/json",
		"X-Custom":               "value",
		"Authorization":          "Bearer t",
	}
	for k, v := range want {
		if vs := got.header.Values(k); len(vs) != 1 || vs[0] != v {
			t.Errorf("header %s = %q, want [%q]", k, vs, v)
		}
	}
	for _, k := range []string{"Keep-Alive", "Upgrade", "Te", "Trailer", "Proxy-Authorization", "Proxy-Connection"} {
		if v := got.header.Values(k); len(v) != 0 {
			t.Errorf("hop-by-hop header %s forwarded: %q", k, v)
		}
	}
	if v := got.header.Get("Connection"); v == "close" {
		t.Errorf("Connection: close forwarded")
	}
	if got.host != strings.TrimPrefix(s.srv.URL, "http://") {
		t.Errorf("Host = %q, want the URL's host", got.host)
	}
	if len(got.transferEncoding) != 0 || got.contentLength != int64(len(ev.Body)) {
		t.Errorf("framing: transfer-encoding %q, content-length %d; want the body's own", got.transferEncoding, got.contentLength)
	}
	if got.method != "POST" || got.path != "/hook" || string(got.body) != `{"n":1}` {
		t.Errorf("request = %s %s %q", got.method, got.path, got.body)
	}
}

func TestDeliverContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		body    string
		headers map[string]string
		want    string // "" means no Content-Type at all
	}{
		{name: "body, none given", method: "POST", body: "{}", want: "application/json"},
		{name: "body, given", method: "PUT", body: "a=1", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: "application/x-www-form-urlencoded"},
		{name: "body, given in lower case", method: "POST", body: "hi", headers: map[string]string{"content-type": "text/plain"}, want: "text/plain"},
		{name: "no body", method: "POST", want: ""},
		{name: "GET without body", method: "GET", want: ""},
		{name: "DELETE with body", method: "DELETE", body: "{}", want: "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSink(t, nil)
			ev := deliveryEvent(s.srv.URL)
			ev.Method, ev.Body, ev.Headers = tt.method, []byte(tt.body), tt.headers
			if r := New(Config{}).Deliver(context.Background(), ev, 5*time.Second); r.Err != nil {
				t.Fatalf("Deliver: %v", r.Err)
			}
			got := s.requests()[0]
			if ct := got.header.Values("Content-Type"); tt.want == "" && len(ct) != 0 || tt.want != "" && (len(ct) != 1 || ct[0] != tt.want) {
				t.Fatalf("Content-Type = %q, want %q", ct, tt.want)
			}
			if got.method != tt.method || string(got.body) != tt.body {
				t.Fatalf("request = %s %q", got.method, got.body)
			}
		})
	}
}

func TestDeliverRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target := newSink(t, nil)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/elsewhere", http.StatusFound)
	})
	r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
	if r.Err != nil || r.StatusCode != http.StatusFound {
		t.Fatalf("Deliver = %+v, want StatusCode 302", r)
	}
	if n := len(target.requests()); n != 0 {
		t.Fatalf("redirect followed: target got %d requests", n)
	}
	if Classify(r) != scheduler.StatusFailed {
		t.Fatalf("Classify(302) = %s", Classify(r))
	}
}

func TestDeliverTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes
	r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 50*time.Millisecond)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "timeout") {
		t.Fatalf("Deliver = %+v, want an error mentioning timeout", r)
	}
	if r.Unbuildable || r.StatusCode != 0 || Classify(r) != scheduler.StatusPending {
		t.Fatalf("a timeout must be retryable: %+v", r)
	}
	if r.Duration < 50*time.Millisecond {
		t.Fatalf("Duration = %v", r.Duration)
	}
}

func TestDeliverResponseSnippet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string
	}{
		{"short", "accepted", "accepted"},
		{"capped", strings.Repeat("x", 5000), strings.Repeat("x", ResponseSnippetBytes)},
		{"exactly the cap", strings.Repeat("y", ResponseSnippetBytes), strings.Repeat("y", ResponseSnippetBytes)},
		{"cut inside a UTF-8 sequence", strings.Repeat("a", ResponseSnippetBytes-1) + "é and more", strings.Repeat("a", ResponseSnippetBytes-1)},
		{"larger than the read limit", strings.Repeat("z", 200<<10), strings.Repeat("z", ResponseSnippetBytes)},
		{"invalid UTF-8 dropped", "ok\xff\xfe", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, tt.body)
			})
			r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
			if r.Err != nil || r.StatusCode != 500 {
				t.Fatalf("Deliver = %v, %d", r.Err, r.StatusCode)
			}
			if len(r.Response) > ResponseSnippetBytes || r.Response != tt.want {
				t.Fatalf("Response = %d bytes %.40q..., want %d bytes", len(r.Response), r.Response, len(tt.want))
			}
		})
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want time.Duration
	}{
		{429, 7 * time.Second},
		{503, 7 * time.Second},
		{500, 0}, // only 429 and 503 carry a meaningful Retry-After
		{200, 0},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			t.Parallel()
			s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(tt.code)
			})
			r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
			if r.StatusCode != tt.code || r.RetryAfter != tt.want {
				t.Fatalf("Deliver = %d, RetryAfter %v; want %d, %v", r.StatusCode, r.RetryAfter, tt.code, tt.want)
			}
		})
	}
}

func TestDeliverKeepAlive(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"status":"ok","padding":"`+strings.Repeat("p", 2000)+`"}`)
	}))
	startCounting(t, srv, &conns)

	d := New(Config{})
	for i := range 20 {
		ev := deliveryEvent(srv.URL)
		ev.Body = []byte(`{"i":1}`)
		if r := d.Deliver(context.Background(), ev, 5*time.Second); r.Err != nil || r.StatusCode != 200 {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	if n := conns.Load(); n > 2 {
		t.Fatalf("20 sequential deliveries opened %d connections, want at most 2 (keep-alive)", n)
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := New(Config{}).Deliver(context.Background(), deliveryEvent(url), 5*time.Second)
	if r.Err == nil || r.Unbuildable || Classify(r) != scheduler.StatusPending {
		t.Fatalf("Deliver to a closed port = %+v, want a retryable error", r)
	}
}

func TestDeliverUnbuildable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   *scheduler.Event
	}{
		{"bad method", &scheduler.Event{App: "a", ID: "b", URL: "http://127.0.0.1:1/", Method: "BAD METHOD"}},
		{"bad url", &scheduler.Event{App: "a", ID: "b", URL: "http://[::1/", Method: "POST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := New(Config{}).Deliver(context.Background(), tt.ev, time.Second)
			if r.Err == nil || !r.Unbuildable || Classify(r) != scheduler.StatusFailed {
				t.Fatalf("Deliver = %+v, want unbuildable", r)
			}
		})
	}
}

func TestDeliverGuard(t *testing.T) {
	t.Parallel()

	t.Run("blocks loopback", func(t *testing.T) {
		t.Parallel()
		s := newSink(t, nil)
		d := New(Config{Guard: &AddressGuard{}})
		r := d.Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
		if r.Err == nil || !r.Unbuildable || Classify(r) != scheduler.StatusFailed {
			t.Fatalf("Deliver to loopback with a guard = %+v, want a non-retryable failure", r)
		}
		if !errors.Is(r.Err, ErrBlockedAddress) || !strings.Contains(r.Err.Error(), "127.0.0.1") {
			t.Fatalf("error = %v, want ErrBlockedAddress naming 127.0.0.1", r.Err)
		}
		if n := len(s.requests()); n != 0 {
			t.Fatalf("the destination got %d requests", n)
		}
	})

	t.Run("allow list lets loopback through", func(t *testing.T) {
		t.Parallel()
		s := newSink(t, nil)
		g := &AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
		r := New(Config{Guard: g}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
		if r.Err != nil || r.StatusCode != 200 || len(s.requests()) != 1 {
			t.Fatalf("Deliver = %+v", r)
		}
	})
}

// startCounting starts srv (made with httptest.NewUnstartedServer) counting
// the connections it accepts in conns, and closes it when the test ends.
func startCounting(t *testing.T, srv *httptest.Server, conns *atomic.Int32) {
	t.Helper()
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
}
