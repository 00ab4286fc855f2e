package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/scheduler/worker"
)

// TestWorkerNoRetry: a destination answering Cassata-Retry: false gets no
// further attempt (API.md §9): a 503 ends FAILED after attempt 1 with the
// reason in the history, a 200 ends COMPLETED with no error, and a 503
// without the header (or with true) is retried as usual.
func TestWorkerNoRetry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		status    int
		retry     string // the Cassata-Retry value; "" for none
		want      scheduler.Status
		attempts  int
		wantError string
	}{
		{"503 false", 503, "false", scheduler.StatusFailed, 1, delivery.NoRetryReason},
		{"503 FALSE", 503, "FALSE", scheduler.StatusFailed, 1, delivery.NoRetryReason},
		{"429 false", 429, "false", scheduler.StatusFailed, 1, delivery.NoRetryReason},
		{"404 false", 404, "false", scheduler.StatusFailed, 1, delivery.NoRetryReason},
		{"200 false", 200, "false", scheduler.StatusCompleted, 1, ""},
		{"503 plain", 503, "", scheduler.StatusServiceUnavailable, 3, ""},
		{"503 true", 503, "true", scheduler.StatusServiceUnavailable, 3, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupWorker(t, func(w http.ResponseWriter, _ *http.Request) {
				if tc.retry != "" {
					w.Header()["cassata-retry"] = []string{tc.retry} // any case on the wire
				}
				w.WriteHeader(tc.status)
			}, worker.Config{})
			b.run(t)
			b.schedule(t, "nr", time.Now(), func(ev *scheduler.Event) {
				ev.MaxAttempts, ev.MinBackoff, ev.MaxBackoff = 3, 10*time.Millisecond, 20*time.Millisecond
			})
			waitUntil(t, 10*time.Second, "the event did not reach a final status", func() bool {
				return b.get(t, "nr").Status.Final()
			})
			time.Sleep(100 * time.Millisecond) // room for a wrong extra attempt; never needed to pass
			ev := b.get(t, "nr")
			if ev.Status != tc.want || ev.Attempts != tc.attempts || len(ev.History) != tc.attempts {
				t.Fatalf("%s after %d attempts, history %+v; want %s after %d", ev.Status, ev.Attempts, ev.History, tc.want, tc.attempts)
			}
			if n := len(b.got.of("nr")); n != tc.attempts {
				t.Errorf("%d requests, want %d", n, tc.attempts)
			}
			for _, a := range ev.History {
				if a.StatusCode != tc.status || a.Error != tc.wantError {
					t.Errorf("attempt %d: status %d, error %q; want %d, %q", a.Attempt, a.StatusCode, a.Error, tc.status, tc.wantError)
				}
			}
			if ev.LastError != tc.wantError {
				t.Errorf("last error %q, want %q", ev.LastError, tc.wantError)
			}
		})
	}
}

// TestFanoutNoRetry: a subscription's delivery is an ordinary event, so a
// subscriber answering Cassata-Retry: false gets no second attempt either,
// and the message fails.
func TestFanoutNoRetry(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, nil)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cassata-Retry", "false")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(refusing.Close)
	b.subscribe(t, topic.Subscription{ID: "ok"})
	b.subscribe(t, topic.Subscription{ID: "refuses", URL: refusing.URL + "/refuses", MaxAttempts: 3})
	if _, _, err := b.msgs.Publish(context.Background(), topic.Publish{App: "shop", ID: "m-nr", Topic: "orders",
		Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, "w-nr")
	m := b.waitStatus(t, "m-nr", topic.MessageFailed)
	for _, d := range m.Deliveries {
		want, attempts := scheduler.StatusCompleted, 1
		if d.Subscription == "refuses" {
			want = scheduler.StatusFailed
		}
		if d.Status != want || d.Attempts != attempts {
			t.Errorf("delivery %+v: want %s after %d attempt", d, want, attempts)
		}
		if d.Subscription == "refuses" {
			ev, err := b.st.Get(context.Background(), "shop", d.EventID)
			if err != nil || len(ev.History) != 1 || ev.History[0].Error != delivery.NoRetryReason {
				t.Errorf("delivery event %+v (%v): want one attempt with error %q", ev, err, delivery.NoRetryReason)
			}
		}
	}
}
