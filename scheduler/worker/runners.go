package worker

import (
	"sync/atomic"
	"time"
)

// runnerIdle is how long a delivery goroutine waits for the next delivery
// before it exits.
const runnerIdle = 30 * time.Second

// runners runs the deliveries on goroutines that live on from one delivery
// to the next. A goroutine per delivery grows its stack anew every time
// (the HTTP client's call chain is deep): copying stacks was ~8% of a
// worker's CPU in a burst profile. A delivery goes to an idle runner when
// one is waiting, else to a new one, so there are never more runners than
// deliveries in flight at once (Concurrency bounds those); a runner idle for
// runnerIdle exits, so a quiet worker keeps none, and all exit on stop.
type runners struct {
	jobs    chan func()
	stop    chan struct{}
	spawned atomic.Int64 // runners started so far
	running atomic.Int64 // runners alive now
}

func newRunners() *runners {
	return &runners{jobs: make(chan func()), stop: make(chan struct{})}
}

// run runs f on an idle runner or a new one.
func (r *runners) run(f func()) {
	select {
	case r.jobs <- f:
	default:
		r.spawned.Add(1)
		r.running.Add(1)
		go r.loop(f)
	}
}

func (r *runners) loop(f func()) {
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	defer r.running.Add(-1)
	for {
		f()
		idle.Reset(runnerIdle)
		select {
		case f = <-r.jobs:
		case <-idle.C:
			return
		case <-r.stop:
			return
		}
	}
}

// close makes the idle runners exit; the caller has waited for every job.
func (r *runners) close() { close(r.stop) }
