package worker

import (
	"sync"
	"testing"
	"time"
)

// TestRunnersReuseGoroutines: deliveries one after another reuse one
// runner; concurrent ones get one each; later ones reuse those; close makes
// the idle ones exit.
//
// A runner that finished a job is reused once it waits on jobs again, which
// the test cannot observe: it pauses before each job, and on a loaded
// machine a runner may still be short of waiting after the pause (CI saw it
// once), so a few extra runners are allowed where the pause decides. A
// runners that never reused one would start one per job.
func TestRunnersReuseGoroutines(t *testing.T) {
	const pause = 5 * time.Millisecond
	waitAlive := func(r *runners, n int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for r.running.Load() != n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := r.running.Load(); got != n {
			t.Fatalf("%d runners alive, want %d", got, n)
		}
	}

	r := newRunners()
	for range 20 {
		done := make(chan struct{})
		r.run(func() { close(done) })
		<-done
		time.Sleep(pause) // back to waiting on jobs
	}
	if got := r.spawned.Load(); got > 3 {
		t.Fatalf("%d runners started for 20 jobs one after another, want 1 reused (at most 3 on a stalled machine)", got)
	}
	r.close()
	waitAlive(r, 0)

	r = newRunners()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		r.run(func() { defer wg.Done(); <-release })
	}
	// None was idle: each of the 10 held its runner when the next came.
	if got := r.spawned.Load(); got != 10 {
		t.Fatalf("%d runners started for 10 concurrent jobs, want 10", got)
	}
	close(release)
	wg.Wait()
	waitAlive(r, 10)
	time.Sleep(pause)
	ran := make(chan int, 10)
	for i := range 10 {
		r.run(func() { ran <- i })
		<-ran
		time.Sleep(pause)
	}
	if got := r.spawned.Load(); got > 12 {
		t.Fatalf("%d runners started, want the 10 idle ones reused (at most 2 more on a stalled machine)", got)
	}
	r.close()
	waitAlive(r, 0)
}
