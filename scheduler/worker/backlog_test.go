package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// TestWorkerBacklogged: a worker draining more due events than one claim
// takes reports Backlogged (the archiver yields to it); idle, it does not.
func TestWorkerBacklogged(t *testing.T) {
	release := make(chan struct{})
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hold deliveries until the test has looked
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(dest.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "bl", Shards: 1})
	sched := scheduler.New(st, scheduler.Config{})
	w := worker.New(st, delivery.New(delivery.Config{}), worker.Config{
		Concurrency: 4, Batch: 2, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if w.Backlogged() {
		t.Fatal("a worker that never claimed is Backlogged")
	}
	for i := range 10 {
		ev := &scheduler.Event{App: "a", ID: "e" + strconv.Itoa(i), URL: dest.URL, DueAt: time.Now()}
		if _, _, err := sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(5 * time.Second)
	for !w.Backlogged() {
		if time.Now().After(deadline) {
			t.Fatal("not Backlogged while 10 events were due for a worker taking 2 per claim")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	for i := range 2 { // exactly one full claim with nothing due behind it: not a backlog
		ev := &scheduler.Event{App: "a", ID: "late" + strconv.Itoa(i), URL: dest.URL, DueAt: time.Now().Add(time.Second)}
		if _, _, err := sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for w.Backlogged() || w.InFlight() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("still Backlogged after every event was delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The two late events come due together and fill one claim exactly.
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if w.Backlogged() {
			t.Fatal("Backlogged after a full claim that left nothing due behind")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
