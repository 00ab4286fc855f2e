package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCallbacksThroughProcesses: callback_url and failure_callback_url
// (API.md §5, §7) through a server and a worker process. Each final status
// of an event or a message is reported once, by a POST of it as GET shows
// it, with Cassata-Callback-For; failure callbacks only for failures; a
// retry's new final status is reported again; a callback is an event of
// its own, without a callback; a subscription's callback_url is its
// deliveries'.
func TestCallbacksThroughProcesses(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	base, _, _ := topicProcs(t, e, 1)
	const app = testApp
	target := newDestination(t, func(w http.ResponseWriter, r *http.Request, _ arrival) {
		if strings.HasPrefix(r.URL.Path, "/bad") {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	cb := newDestination(t, nil)
	at := func(path string) []arrival {
		var out []arrival
		for _, a := range cb.all() {
			if a.Path == path {
				out = append(out, a)
			}
		}
		return out
	}
	waitCallbacks := func(path string, n int) []arrival {
		t.Helper()
		waitFor(t, 20*time.Second, func() string {
			if got := len(at(path)); got < n {
				return fmt.Sprintf("%d callbacks at %s, want %d", got, path, n)
			}
			return ""
		})
		return at(path)
	}
	body := func(a arrival) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(a.Body, &m); err != nil {
			t.Fatalf("callback body %s: %v", a.Body, err)
		}
		return m
	}

	create := func(id, path, cbPath string) {
		apiJSON(t, http.MethodPost, base+"/v1/events", map[string]any{"app": app, "id": id, "url": target.URL(path), "delay": "0s",
			"max_attempts": 1, "callback_url": cb.URL(cbPath), "failure_callback_url": cb.URL(cbPath + "-failed")},
			http.StatusCreated, nil)
	}
	create("ev-ok", "/ok", "/ok")
	create("ev-bad", "/bad", "/bad")

	got := waitCallbacks("/ok", 1)
	if m := body(got[0]); m["id"] != "ev-ok" || m["status"] != "COMPLETED" || got[0].Header.Get("Cassata-Callback-For") != app+"/ev-ok" {
		t.Errorf("callback of ev-ok: %s, for %q", got[0].Body, got[0].Header.Get("Cassata-Callback-For"))
	}
	waitCallbacks("/bad", 1)
	failed := waitCallbacks("/bad-failed", 1)
	if m := body(failed[0]); m["status"] != "FAILED" {
		t.Errorf("failure callback of ev-bad: %s", failed[0].Body)
	}

	// A callback is an event of the same application, without a callback of its own.
	cbID := got[0].Header.Get("Cassata-Event-Id")
	var cbEvent map[string]any
	apiJSON(t, http.MethodGet, base+"/v1/events/"+app+"/"+cbID, nil, http.StatusOK, &cbEvent)
	if cbEvent["url"] != cb.URL("/ok") || cbEvent["callback_url"] != nil || cbEvent["failure_callback_url"] != nil {
		t.Errorf("callback event %v", cbEvent)
	}

	// A retry reaches a final status again: reported again.
	apiJSON(t, http.MethodPost, base+"/v1/events/"+app+"/ev-bad/retry", nil, http.StatusOK, nil)
	waitCallbacks("/bad", 2)
	waitCallbacks("/bad-failed", 2)

	// A message's callback carries the message; a subscription's is its deliveries'.
	subscribe(t, base, app, "s-cb", map[string]any{"url": target.URL("/sub"), "callback_url": cb.URL("/delivery")})
	apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{"app": app, "topic": "orders", "id": "msg-cb",
		"callback_url": cb.URL("/message"), "failure_callback_url": cb.URL("/message-failed")}, http.StatusCreated, nil)
	msg := waitCallbacks("/message", 1)
	if m := body(msg[0]); m["id"] != "msg-cb" || m["status"] != "COMPLETED" || msg[0].Header.Get("Cassata-Callback-For") != app+"/msg-cb" {
		t.Errorf("callback of msg-cb: %s, for %q", msg[0].Body, msg[0].Header.Get("Cassata-Callback-For"))
	}
	del := waitCallbacks("/delivery", 1)
	if m := body(del[0]); m["id"] != "msg-cb~s-cb" || m["status"] != "COMPLETED" {
		t.Errorf("callback of the delivery: %s", del[0].Body)
	}

	// Nothing more comes: one callback per final status, none for callbacks.
	time.Sleep(1500 * time.Millisecond)
	for path, want := range map[string]int{"/ok": 1, "/ok-failed": 0, "/bad": 2, "/bad-failed": 2, "/message": 1,
		"/message-failed": 0, "/delivery": 1} {
		if n := len(at(path)); n != want {
			t.Errorf("%d callbacks at %s, want %d", n, path, want)
		}
	}
}
