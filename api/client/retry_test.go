package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/api/client"
)

// dropProxy forwards requests to a server and, for the first request of
// each route listed in drop, throws the answer away and closes the
// connection: the server acted, the client never hears of it.
type dropProxy struct {
	t       *testing.T
	backend string
	drop    map[string]bool // "POST /v1/events"

	mu   sync.Mutex
	seen map[string]int // forwarded requests per route
}

func newDropProxy(t *testing.T, backend string, drop ...string) (*dropProxy, *httptest.Server) {
	p := &dropProxy{t: t, backend: backend, drop: map[string]bool{}, seen: map[string]int{}}
	for _, d := range drop {
		p.drop[d] = true
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *dropProxy) count(route string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[route]
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	if r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/events/") {
		route = "DELETE /v1/events/…"
	}
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.backend+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	p.mu.Lock()
	p.seen[route]++
	first := p.seen[route] == 1
	p.mu.Unlock()
	if first && p.drop[route] {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			p.t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// TestCreateRetriedAfterDroppedResponse: a create whose answer is lost is
// sent again and answered as a replay; the server has one event, not two.
// A cancel whose answer is lost is not sent again.
func TestCreateRetriedAfterDroppedResponse(t *testing.T) {
	s := startServer(t, serverOpts{})
	key := s.newApp(t, "shop")
	proxy, front := newDropProxy(t, s.base, "POST /v1/events", "POST /v1/events/batch", "DELETE /v1/events/…")
	c := client.New(front.URL, client.WithAPIKey(key), client.WithRetry(client.RetryPolicy{MinDelay: 10 * time.Millisecond}))
	direct := client.New(s.base, client.WithAPIKey(key))
	ctx := t.Context()
	dest := "https://example.com/dropped-" + client.NewID()

	// No id given: the client's own id makes the second try a replay.
	ev, err := c.CreateEvent(ctx, client.CreateEventRequest{URL: dest, Body: "once", Delay: time.Hour})
	if err != nil {
		t.Fatalf("CreateEvent through a proxy that drops the first answer: %v", err)
	}
	if got := proxy.count("POST /v1/events"); got != 2 {
		t.Errorf("creates forwarded: %d, want 2 (the dropped one and the retry)", got)
	}
	if !ev.Replayed || ev.ID == "" || ev.Body != "once" {
		t.Errorf("CreateEvent = %+v; want the first try's event, Replayed", ev)
	}

	res, err := c.CreateEvents(ctx, []client.CreateEventRequest{
		{URL: dest, Body: "batch-a", Delay: time.Hour}, {URL: dest, Body: "batch-b", Delay: time.Hour}})
	if err != nil {
		t.Fatalf("CreateEvents through a proxy that drops the first answer: %v", err)
	}
	if got := proxy.count("POST /v1/events/batch"); got != 2 {
		t.Errorf("batches forwarded: %d, want 2", got)
	}
	for i, r := range res {
		if r.Status != http.StatusOK || r.Event == nil || !r.Event.Replayed {
			t.Errorf("batch item %d = %+v; want 200, a replay", i, r)
		}
	}

	// Exactly three events with that URL, however long search takes to see them.
	count := func() (int, error) {
		n := 0
		for _, err := range direct.AllEvents(ctx, client.SearchQuery{EventFilter: client.EventFilter{Q: dest}}) {
			if err != nil {
				return 0, err
			}
			n++
		}
		return n, nil
	}
	eventually(t, "search sees the events", func() error {
		if n, err := count(); err != nil || n < 3 {
			return fmt.Errorf("%d events, %v", n, err)
		}
		return nil
	})
	time.Sleep(2500 * time.Millisecond) // search sees every create within 2 s
	if n, err := count(); err != nil || n != 3 {
		t.Errorf("events with the URL: %d, %v; want 3 (one per create)", n, err)
	}

	// A cancel is not idempotent (a repeat answers 409): its lost answer is an error.
	_, err = c.CancelEvent(ctx, "shop", ev.ID)
	if err == nil {
		t.Errorf("CancelEvent with a dropped answer: no error")
	}
	if got := proxy.count("DELETE /v1/events/…"); got != 1 {
		t.Errorf("cancels forwarded: %d, want 1 (not retried)", got)
	}
	if got, err := direct.GetEvent(ctx, "shop", ev.ID); err != nil || got.Status != client.StatusCancelled {
		t.Errorf("the event after the cancel = %+v, %v; want CANCELLED", got, err)
	}
}

// TestRateLimitRetryAfter: a 429 is retried after the server's Retry-After,
// not after the (here tiny) backoff.
func TestRateLimitRetryAfter(t *testing.T) {
	s := startServer(t, serverOpts{rateLimit: 1})
	key := s.newApp(t, "shop")
	ctx := t.Context()
	once := client.New(s.base, client.WithAPIKey(key), client.WithRetry(client.NoRetry))

	// Use up the burst: the server then refuses with 429 and Retry-After.
	var limited *client.Error
	for i := 0; i < 20 && limited == nil; i++ {
		_, err := once.GetEvent(ctx, "shop", "x")
		if client.IsRateLimited(err) {
			limited = wantError(t, "rate-limited", err, http.StatusTooManyRequests, "rate_limited", "")
		} else if !client.IsNotFound(err) {
			t.Fatalf("GetEvent: %v", err)
		}
	}
	if limited == nil {
		t.Fatal("no 429 after 20 quick requests at a rate limit of 1/s")
	}
	if limited.RetryAfter < time.Second {
		t.Errorf("429 RetryAfter = %s, want at least 1s", limited.RetryAfter)
	}

	patientPolicy := client.WithRetry(client.RetryPolicy{MaxAttempts: 5, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})
	var (
		ev   *client.Event
		took time.Duration
		got  []int
	)
	// Use up the burst again right before the call under test, so that its
	// first try is refused (a stalled machine may refill it in between: then again).
	for round := 0; round < 5; round++ {
		for i := 0; i < 20; i++ {
			if _, err := once.GetEvent(ctx, "shop", "x"); client.IsRateLimited(err) {
				break
			}
		}
		statuses := &statusRecorder{rt: http.DefaultTransport}
		patient := client.New(s.base, client.WithAPIKey(key), client.WithHTTPClient(&http.Client{Transport: statuses}), patientPolicy)
		start := time.Now()
		var err error
		ev, err = patient.CreateEvent(ctx, client.CreateEventRequest{URL: "https://example.com/x", Delay: time.Hour})
		took, got = time.Since(start), statuses.get()
		if err != nil {
			t.Fatalf("CreateEvent after a 429: %v (after %s, answers %v)", err, took, got)
		}
		if len(got) > 0 && got[0] == http.StatusTooManyRequests {
			break
		}
	}
	if len(got) < 2 || got[0] != http.StatusTooManyRequests || got[len(got)-1] != http.StatusCreated {
		t.Fatalf("answers to the tries: %v; want 429s, then 201", got)
	}
	if ev.Replayed {
		t.Errorf("the event is a replay: the refused try was stored")
	}
	// Retry-After is a whole number of seconds, at least 1: without it the
	// backoff of 1-2ms would have spent every try at once.
	if took < 900*time.Millisecond {
		t.Errorf("CreateEvent took %s with answers %v: it did not wait for Retry-After", took, got)
	}
}

// statusRecorder records the status of each answer.
type statusRecorder struct {
	rt http.RoundTripper
	mu sync.Mutex
	st []int
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.st = append(r.st, resp.StatusCode)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *statusRecorder) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.st...)
}

// fake is a server whose answers a test scripts: each request takes the
// next answer (the last one repeats).
type fake struct {
	mu       sync.Mutex
	answers  []func(w http.ResponseWriter)
	requests []*http.Request
}

func newFake(t *testing.T, answers ...func(w http.ResponseWriter)) (*fake, string) {
	f := &fake{answers: answers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, r)
	answer := f.answers[min(n, len(f.answers)-1)]
	f.mu.Unlock()
	answer(w)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func answer(status int, body string, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

const eventJSON = `{"app":"a","id":"e","url":"https://example.com","method":"POST","headers":{},"body":null,
	"status":"PENDING","attempts":0,"max_attempts":5,"due_at":"2026-01-02T15:04:05.000Z",
	"created_at":"2026-01-02T15:04:05.000Z","updated_at":"2026-01-02T15:04:05.000Z","history":[]}`

var quick = client.WithRetry(client.RetryPolicy{MaxAttempts: 3, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})

// TestRetryRules: which answers are retried for which calls.
func TestRetryRules(t *testing.T) {
	ctx := t.Context()
	unavailable := answer(503, `{"error":{"code":"unavailable","message":"storage is unavailable"}}`)

	t.Run("idempotent call retried after 5xx", func(t *testing.T) {
		f, url := newFake(t, unavailable, answer(200, eventJSON))
		ev, err := client.New(url, quick).GetEvent(ctx, "a", "e")
		if err != nil || ev.ID != "e" || f.count() != 2 {
			t.Errorf("GetEvent = %+v, %v after %d requests; want the event after 2", ev, err, f.count())
		}
	})
	t.Run("non-idempotent call not retried after 5xx", func(t *testing.T) {
		f, url := newFake(t, unavailable, answer(200, eventJSON))
		_, err := client.New(url, quick).RetryEvent(ctx, "a", "e")
		wantError(t, "RetryEvent", err, 503, "unavailable", "")
		if f.count() != 1 {
			t.Errorf("requests: %d, want 1", f.count())
		}
	})
	t.Run("non-idempotent call retried after 429", func(t *testing.T) {
		f, url := newFake(t, answer(429, `{"error":{"code":"rate_limited","message":"slow down"}}`), answer(200, eventJSON))
		if _, err := client.New(url, quick).TriggerSchedule(ctx, "a", "e"); err != nil || f.count() != 2 {
			t.Errorf("TriggerSchedule after a 429: %v after %d requests", err, f.count())
		}
	})
	t.Run("4xx not retried", func(t *testing.T) {
		f, url := newFake(t, answer(409, `{"error":{"code":"duplicate","message":"exists"}}`))
		_, err := client.New(url, quick).CreateEvent(ctx, client.CreateEventRequest{URL: "https://example.com"})
		wantError(t, "CreateEvent", err, 409, "duplicate", "")
		if f.count() != 1 {
			t.Errorf("requests: %d, want 1", f.count())
		}
	})
	t.Run("gives up after MaxAttempts", func(t *testing.T) {
		f, url := newFake(t, unavailable)
		_, err := client.New(url, quick).GetEvent(ctx, "a", "e")
		wantError(t, "GetEvent", err, 503, "unavailable", "")
		if f.count() != 3 {
			t.Errorf("requests: %d, want 3", f.count())
		}
	})
	t.Run("every try of a create sends the same id", func(t *testing.T) {
		var mu sync.Mutex
		var bodies []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			n := len(bodies)
			mu.Unlock()
			if n == 1 {
				unavailable(w)
				return
			}
			answer(201, eventJSON)(w)
		}))
		t.Cleanup(srv.Close)
		if _, err := client.New(srv.URL, quick).CreateEvent(ctx, client.CreateEventRequest{URL: "https://example.com"}); err != nil {
			t.Fatal(err)
		}
		if len(bodies) != 2 || bodies[0] != bodies[1] || !strings.Contains(bodies[0], `"id":"`) {
			t.Errorf("bodies of the tries: %q; want the same, with an id", bodies)
		}
	})
	t.Run("Retry-After beyond MaxRetryAfter is not waited for", func(t *testing.T) {
		f, url := newFake(t, answer(429, `{"error":{"code":"rate_limited","message":"later"}}`, "Retry-After", "3600"))
		start := time.Now()
		_, err := client.New(url, quick).GetEvent(ctx, "a", "e")
		ce := wantError(t, "GetEvent", err, 429, "rate_limited", "")
		if ce.RetryAfter != time.Hour || f.count() != 1 || time.Since(start) > 10*time.Second {
			t.Errorf("RetryAfter %s after %d requests and %s", ce.RetryAfter, f.count(), time.Since(start))
		}
	})
	t.Run("Retry-After beyond the context's deadline is not waited for", func(t *testing.T) {
		f, url := newFake(t, answer(503, `{"error":{"code":"unavailable","message":"x"}}`, "Retry-After", "60"))
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := client.New(url, quick).GetEvent(ctx, "a", "e")
		wantError(t, "GetEvent", err, 503, "", "")
		if f.count() != 1 || ctx.Err() != nil {
			t.Errorf("%d requests, context %v; want one request, returned before the deadline", f.count(), ctx.Err())
		}
	})
	t.Run("an error that is not the API's", func(t *testing.T) {
		_, url := newFake(t, func(w http.ResponseWriter) { http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway) })
		_, err := client.New(url, client.WithRetry(client.NoRetry)).GetEvent(ctx, "a", "e")
		ce := wantError(t, "GetEvent", err, 502, "", "")
		if !strings.Contains(ce.Message, "bad gateway") {
			t.Errorf("message %q", ce.Message)
		}
	})
	t.Run("connection refused is retried even for a non-idempotent call", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		// Two retries wait at least 25ms each: a call not retried returns at once.
		slow := client.WithRetry(client.RetryPolicy{MaxAttempts: 3, MinDelay: 50 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
		start := time.Now()
		_, err := client.New(url, slow).CancelEvent(ctx, "a", "e")
		if err == nil || time.Since(start) < 50*time.Millisecond {
			t.Errorf("CancelEvent to a closed port: %v after %s", err, time.Since(start))
		}
	})
	t.Run("headers", func(t *testing.T) {
		f, url := newFake(t, answer(200, eventJSON))
		if _, err := client.New(url+"/", client.WithAPIKey("csk_k"), client.WithUserAgent("ua/1")).GetEvent(ctx, "a b", "e"); err != nil {
			t.Fatal(err)
		}
		r := f.requests[0]
		if r.Header.Get("Authorization") != "Bearer csk_k" || r.Header.Get("User-Agent") != "ua/1" || r.URL.EscapedPath() != "/v1/events/a%20b/e" {
			t.Errorf("request %s %s, headers %v", r.Method, r.URL.EscapedPath(), r.Header)
		}
	})
}
