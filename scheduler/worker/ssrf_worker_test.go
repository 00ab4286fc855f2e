package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/fakedns"
	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// TestWorkerFailsBlockedDestination runs the whole path: an event whose URL
// names a host that passes the create-time check, a worker whose guarded
// deliverer resolves that name to 127.0.0.1 (DNS rebinding, through a fake
// DNS server), and the outcome a user sees: FAILED after one attempt (no
// retries, though five were allowed), the guard's error in the history, and
// nothing sent to the loopback destination.
func TestWorkerFailsBlockedDestination(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	dest := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(dest.Close)
	u, _ := url.Parse(dest.URL)

	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "ssrf", Shards: 1})
	guard := &delivery.AddressGuard{}
	sched := scheduler.New(st, scheduler.Config{Guard: guard})
	ev := &scheduler.Event{App: "shop", ID: "rebind-1", URL: "http://rebind.example.test:" + u.Port() + "/hook",
		DueAt: time.Now(), MaxAttempts: 5}
	if _, created, err := sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil || !created {
		t.Fatalf("Create = %v, %v; the name must pass the create-time check", created, err)
	}

	dns := fakedns.New(map[string][][]string{"rebind.example.test": {{"127.0.0.1"}}})
	d := delivery.New(delivery.Config{Guard: guard, Resolver: dns.Resolver()})
	w := worker.New(st, d, worker.Config{PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	var (
		got *scheduler.Event
		err error
	)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = sched.Get(context.Background(), "shop", "rebind-1")
		if err == nil && got.Status != scheduler.StatusPending && got.Status != scheduler.StatusProcessing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event still %v after 10s (err %v)", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Status != scheduler.StatusFailed || got.Attempts != 1 || len(got.History) != 1 {
		t.Fatalf("status %s, attempts %d, history %+v; want FAILED after one attempt", got.Status, got.Attempts, got.History)
	}
	if e := got.History[0].Error; !strings.Contains(e, "blocked") || !strings.Contains(e, "127.0.0.1 is loopback") {
		t.Fatalf("history error %q, want the guard's", e)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback destination got %d requests", n)
	}
}
