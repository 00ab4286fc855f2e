package integration

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// TestEveryReadShowsTheSameEvent: GET /v1/events/{app}/{id}, a search
// result and /cassata/event show the same event, body included, while
// Redis has it (pending; delivered with its body dropped from Redis) and
// once only the archive has it; every history entry has all its keys;
// search and bulk retry take several statuses (API.md §2, §5); the flow
// key too, left out where there is none.
func TestEveryReadShowsTheSameEvent(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		e := setupArchive(t, failPathHandler, db, redisstore.Config{Retention: 2 * time.Second})
		w := e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, nil, worker.ArchiverConfig{})
		srv := e.apiServer() // max_attempts shown for events without their own: 5

		// A port nothing listens on: a connection error, no status code.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + l.Addr().String() + "/nobody"
		_ = l.Close()

		done := e.event("done")
		done.Body, done.MaxAttempts, done.Headers = []byte(`{"order":1}`), 3, map[string]string{"X-Trace": "abc"}
		done.FlowKey = "tenant:1"
		bad := e.event("bad")
		bad.URL, bad.Body, bad.FlowKey = e.dest.URL("/fail/bad"), []byte("b"), "tenant:2"
		conn := e.event("conn")
		conn.URL, conn.MaxAttempts = closed, 1
		pend := e.event("pend")
		pend.DueAt, pend.MaxAttempts, pend.Body, pend.FlowKey = time.Now().Add(time.Hour), 3, []byte("later"), "later:1"
		for _, ev := range []*scheduler.Event{done, bad, conn, pend} {
			e.schedule(ev)
		}
		e.waitStatus("done", scheduler.StatusCompleted, 10*time.Second)
		e.waitStatus("bad", scheduler.StatusFailed, 10*time.Second)
		e.waitStatus("conn", scheduler.StatusServiceUnavailable, 10*time.Second)
		e.waitArchived(4, 3, 10*time.Second)

		// Redis lets the delivered event's body go once the archive has it.
		waitFor(t, 10*time.Second, func() string {
			ev, err := e.store.Get(context.Background(), testApp, "done")
			if err != nil {
				t.Fatal(err)
			}
			if !ev.BodyDropped {
				return "Redis still has the body of done"
			}
			return ""
		})

		bodies := map[string]string{"done": `{"order":1}`, "bad": "b", "conn": "", "pend": "later"}
		flowKeys := map[string]any{"done": "tenant:1", "bad": "tenant:2", "conn": nil, "pend": "later:1"}
		check := func(stage string) {
			t.Helper()
			for id, body := range bodies {
				got := getJSON(t, srv.URL+"/v1/events/"+testApp+"/"+id)
				if got["body"] != body {
					t.Errorf("%s: GET %s body = %#v, want %q", stage, id, got["body"], body)
				}
				if got["flow_key"] != flowKeys[id] {
					t.Errorf("%s: GET %s flow_key = %#v, want %#v", stage, id, got["flow_key"], flowKeys[id])
				}
				var found map[string]any
				page := getJSON(t, srv.URL+"/v1/events?"+query("app", testApp, "q", id))
				for _, ev := range page["events"].([]any) {
					if m := ev.(map[string]any); m["id"] == id {
						found = m
					}
				}
				if found == nil {
					t.Errorf("%s: search q=%s did not find it: %v", stage, id, page)
					continue
				}
				for k := range merge(got, found) {
					if !reflect.DeepEqual(got[k], found[k]) {
						t.Errorf("%s: %s: search shows %s = %#v, GET %#v", stage, id, k, found[k], got[k])
					}
				}
				for i, h := range got["history"].([]any) {
					entry := h.(map[string]any)
					for _, k := range []string{"attempt", "at", "status_code", "error", "duration_ms"} {
						if _, ok := entry[k]; !ok {
							t.Errorf("%s: %s history[%d] lacks %q: %v", stage, id, i, k, entry)
						}
					}
				}
				old := getJSON(t, srv.URL+"/cassata/event/"+testApp+"/"+id)
				if old["eventJson"] != body {
					t.Errorf("%s: /cassata/event %s eventJson = %#v, want %q", stage, id, old["eventJson"], body)
				}
			}
			if got := getJSON(t, srv.URL+"/v1/events/"+testApp+"/pend"); got["max_attempts"] != 3.0 {
				t.Errorf("%s: pend max_attempts = %v, want 3", stage, got["max_attempts"])
			}
			hist := func(id string) map[string]any {
				h := getJSON(t, srv.URL+"/v1/events/"+testApp+"/"+id)["history"].([]any)
				return h[len(h)-1].(map[string]any)
			}
			if h := hist("done"); h["status_code"] != 200.0 || h["error"] != nil {
				t.Errorf("%s: done's attempt = %v, want status_code 200, error null", stage, h)
			}
			if h := hist("conn"); h["status_code"] != nil || h["error"] == nil || h["error"] == "" {
				t.Errorf("%s: conn's attempt = %v, want status_code null and an error", stage, h)
			}
			page := getJSON(t, srv.URL+"/v1/events?"+query("app", testApp, "status", "FAILED,SERVICE_UNAVAILABLE"))
			var ids []string
			for _, ev := range page["events"].([]any) {
				ids = append(ids, ev.(map[string]any)["id"].(string))
			}
			sameIDs(t, stage+": status=FAILED,SERVICE_UNAVAILABLE", ids, []string{"bad", "conn"})
		}
		check("in Redis")
		for _, id := range []string{"done", "bad", "conn"} {
			e.waitGoneFromRedis(testApp, id, 10*time.Second)
		}
		check("archived")

		// An unknown status is a 400 naming the field.
		if code, b := call(t, http.MethodGet, srv.URL+"/v1/events?status=FAILED,NOPE"); code != http.StatusBadRequest ||
			!strings.Contains(string(b), `"field":"status"`) {
			t.Errorf("status=FAILED,NOPE: %d %s, want 400 field status", code, b)
		}

		// Bulk retry by the search filters: the two failures, not the others.
		w.stop()
		code, b := postJSON(t, srv.URL+"/v1/events/retry", `{"app":"`+testApp+`","status":"FAILED,SERVICE_UNAVAILABLE"}`)
		if code != http.StatusOK || string(b) != `{"retried":2}` {
			t.Fatalf("bulk retry: %d %s, want 200 {\"retried\":2}", code, b)
		}
		for id, want := range map[string]string{"bad": "PENDING", "conn": "PENDING", "done": "COMPLETED", "pend": "PENDING"} {
			got := getJSON(t, srv.URL+"/v1/events/"+testApp+"/"+id)
			if got["status"] != want {
				t.Errorf("after bulk retry %s is %v, want %s", id, got["status"], want)
			}
			// bad and conn come back from the archive: with their flow keys.
			if got["flow_key"] != flowKeys[id] {
				t.Errorf("after bulk retry %s has flow_key %#v, want %#v", id, got["flow_key"], flowKeys[id])
			}
			if want == "PENDING" && id != "pend" && got["attempts"] != 0.0 {
				t.Errorf("after bulk retry %s has %v attempts, want 0", id, got["attempts"])
			}
		}
		if code, b := postJSON(t, srv.URL+"/v1/events/retry", `{"status":"NOPE"}`); code != http.StatusBadRequest {
			t.Errorf("bulk retry status NOPE: %d %s, want 400", code, b)
		}
		if code, b := postJSON(t, srv.URL+"/v1/events/retry", ``); code != http.StatusBadRequest {
			t.Errorf("bulk retry without a body: %d %s, want 400", code, b)
		}
	})
}

// merge returns the keys of both maps.
func merge(a, b map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// getJSON GETs u, wants 200 and decodes a JSON object.
func getJSON(t testing.TB, u string) map[string]any {
	t.Helper()
	var m map[string]any
	callJSON(t, http.MethodGet, u, http.StatusOK, &m)
	return m
}

// postJSON POSTs a JSON body to u.
func postJSON(t testing.TB, u, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
