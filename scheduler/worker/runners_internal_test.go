package worker

import (
	"sync"
	"testing"
	"time"
)

// TestRunnersReuseGoroutines: deliveries one after another reuse one
// runner; concurrent ones get one each; later ones reuse those; close makes
// the idle ones exit.
func TestRunnersReuseGoroutines(t *testing.T) {
	r := newRunners()
	waitIdle := func(n int64) {
		t.Helper()
		// A runner that finished a job is idle once it waits on jobs again;
		// give it the moment it takes to get there.
		deadline := time.Now().Add(5 * time.Second)
		for r.running.Load() != n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := r.running.Load(); got != n {
			t.Fatalf("%d runners alive, want %d", got, n)
		}
	}
	for i := range 20 {
		done := make(chan struct{})
		r.run(func() { close(done) })
		<-done
		time.Sleep(time.Millisecond) // back to waiting on jobs
		if got := r.spawned.Load(); got != 1 {
			t.Fatalf("job %d: %d runners started, want 1 reused", i, got)
		}
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		r.run(func() { defer wg.Done(); <-release })
	}
	if got := r.spawned.Load(); got != 10 {
		t.Fatalf("%d runners started for 10 concurrent jobs (1 idle before), want 10", got)
	}
	close(release)
	wg.Wait()
	waitIdle(10)
	ran := make(chan int, 10)
	for i := range 10 {
		r.run(func() { ran <- i })
		<-ran
	}
	if got := r.spawned.Load(); got != 10 {
		t.Fatalf("%d runners started, want the 10 idle ones reused", got)
	}
	r.close()
	waitIdle(0)
}
