package delivery

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestDeliverNoRetry: a destination's Cassata-Retry: false (API.md §9), read
// whatever the case of the header's name and value, makes a 503 FAILED and
// leaves a 200 COMPLETED; any other value, or none, changes nothing.
func TestDeliverNoRetry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		header map[string][]string // as written on the wire: names not canonicalised
		want   scheduler.Status
		noRetr bool
	}{
		{"503 false", 503, map[string][]string{"Cassata-Retry": {"false"}}, scheduler.StatusFailed, true},
		{"503 FALSE", 503, map[string][]string{"Cassata-Retry": {"FALSE"}}, scheduler.StatusFailed, true},
		{"503 False, spaces", 503, map[string][]string{"Cassata-Retry": {" False "}}, scheduler.StatusFailed, true},
		{"503 lower-case name", 503, map[string][]string{"cassata-retry": {"false"}}, scheduler.StatusFailed, true},
		{"503 upper-case name", 503, map[string][]string{"CASSATA-RETRY": {"fAlSe"}}, scheduler.StatusFailed, true},
		{"500 false", 500, map[string][]string{"Cassata-Retry": {"false"}}, scheduler.StatusFailed, true},
		{"429 false", 429, map[string][]string{"Cassata-Retry": {"false"}, "Retry-After": {"5"}}, scheduler.StatusFailed, true},
		{"200 false", 200, map[string][]string{"Cassata-Retry": {"false"}}, scheduler.StatusCompleted, true},
		{"503 true", 503, map[string][]string{"Cassata-Retry": {"true"}}, scheduler.StatusPending, false},
		{"503 other value", 503, map[string][]string{"Cassata-Retry": {"no"}}, scheduler.StatusPending, false},
		{"503 empty value", 503, map[string][]string{"Cassata-Retry": {""}}, scheduler.StatusPending, false},
		{"503 absent", 503, nil, scheduler.StatusPending, false},
		{"404 absent", 404, nil, scheduler.StatusFailed, false},
		{"200 absent", 200, nil, scheduler.StatusCompleted, false},
		{"503 other header", 503, map[string][]string{"X-Cassata-Retry": {"false"}}, scheduler.StatusPending, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSink(t, func(w http.ResponseWriter, _ *http.Request) {
				for name, vs := range tc.header {
					w.Header()[name] = vs // raw: the name goes out as written
				}
				w.WriteHeader(tc.status)
			})
			r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
			if r.Err != nil || r.StatusCode != tc.status {
				t.Fatalf("Deliver = %+v, want status %d", r, tc.status)
			}
			if r.NoRetry != tc.noRetr {
				t.Errorf("NoRetry = %v, want %v", r.NoRetry, tc.noRetr)
			}
			if got := Classify(r); got != tc.want {
				t.Errorf("Classify = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestResultSecrets: what a delivery reports as secret for logs to redact:
// the event's header values and body, the Authorization credentials without
// their scheme, and the URL's password with the Basic credentials the client
// sends for it; nothing shorter than MinSecretBytes.
func TestResultSecrets(t *testing.T) {
	t.Parallel()
	s := newSink(t, nil)
	ev := deliveryEvent("http://alice:pa55word@" + s.srv.Listener.Addr().String() + "/hook")
	ev.Headers = map[string]string{"X-Api-Key": "key-123456", "X-Short": "1", "Authorization": "Bearer tok-abcdef"}
	ev.Body = []byte(`{"card":"4111"}`)
	r := New(Config{}).Deliver(context.Background(), ev, 5*time.Second)
	if r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("Deliver = %+v", r)
	}
	got := map[string]bool{}
	for _, v := range r.Secrets() {
		got[v] = true
	}
	for _, want := range []string{"key-123456", "Bearer tok-abcdef", "tok-abcdef", `{"card":"4111"}`, "pa55word",
		"Basic YWxpY2U6cGE1NXdvcmQ=", "YWxpY2U6cGE1NXdvcmQ="} {
		if !got[want] {
			t.Errorf("Secrets() = %q: %q missing", r.Secrets(), want)
		}
	}
	for _, not := range []string{"1", "alice"} {
		if got[not] {
			t.Errorf("Secrets() = %q: has %q", r.Secrets(), not)
		}
	}
}
