package worker_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// TestDeadWorkerJudgedByItsOwnDeadAfter: a worker advertising a longer
// DeadAfter than its judge's is not taken for dead while it is silent for
// less than its own; past that, its events come back.
func TestDeadWorkerJudgedByItsOwnDeadAfter(t *testing.T) {
	ctx := context.Background()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "da", Shards: 1})
	clock := scheduler.NewManualClock(time.UnixMilli(1_700_000_000_000))
	advance := func(d time.Duration) {
		clock.Advance(d)
	}
	ev := &scheduler.Event{App: "a", ID: "held", URL: "https://example.test/x", Method: "POST",
		Status: scheduler.StatusPending, DueAt: clock.Now(), CreatedAt: clock.Now(), UpdatedAt: clock.Now()}
	if _, err := st.Create(ctx, ev, clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Worker B claims it under a long lease and advertises DeadAfter 10s.
	if c, err := st.Claim(ctx, 0, "B", 10, time.Hour, clock.Now()); err != nil || len(c.Events) != 1 {
		t.Fatalf("claim by B: %+v, %v", c, err)
	}
	if err := st.Heartbeat(ctx, scheduler.WorkerInfo{ID: "B", DeadAfterMS: 10_000}, clock.Now()); err != nil {
		t.Fatal(err)
	}

	// Worker A judges with DeadAfter 500ms; its deliveries are not the point.
	a := worker.New(st, delivery.New(delivery.Config{}), worker.Config{
		ID: "A", Clock: clock, HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 500 * time.Millisecond,
		ReapInterval: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	advance(3 * time.Second) // B silent 3s: dead by A's 500ms, alive by its own 10s
	time.Sleep(1500 * time.Millisecond)
	if got, err := st.Get(ctx, "a", "held"); err != nil || got.Status != scheduler.StatusProcessing || got.Worker != "B" {
		t.Fatalf("after 3s of silence B's event is %+v, %v; want still PROCESSING by B", got, err)
	}

	advance(10 * time.Second) // now silent past its own DeadAfter
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := st.Get(ctx, "a", "held")
		if err == nil && got.Worker != "B" && len(got.History) > 0 && got.History[0].Error == "lease expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's event not recovered after 13s of silence: %+v, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
