package scheduler

import "sync"

// Wakeups is one subscription to a store's wake-ups: C receives a value
// whenever an event may have become due earlier than the workers planned,
// and Take tells in which shards, so that a worker looks there rather than
// in every shard. A wake-up that names no shard of the store (a message it
// cannot read; the subscription being made or made again, when wake-ups
// may have been missed) stands for every shard.
type Wakeups struct {
	c     chan struct{}
	mu    sync.Mutex
	all   bool
	woken []bool
}

// NewWakeups returns a subscription's wake-ups for a store of shards
// shards, with nothing woken yet.
func NewWakeups(shards int) *Wakeups {
	return &Wakeups{c: make(chan struct{}, 1), woken: make([]bool, shards)}
}

// C receives a value after a Wake (one value for any number of Wakes not
// yet received), and is closed by Close.
func (w *Wakeups) C() <-chan struct{} { return w.c }

// Wake records a wake-up of shard sh (every shard when sh is not one of
// them, e.g. -1) and signals C.
func (w *Wakeups) Wake(sh int) {
	w.mu.Lock()
	if sh >= 0 && sh < len(w.woken) {
		w.woken[sh] = true
	} else {
		w.all = true
	}
	w.mu.Unlock()
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Take sets woken[s] for every shard woken since the last Take (woken has
// one entry per shard) and forgets them; it leaves the other entries as
// they are.
func (w *Wakeups) Take(woken []bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range min(len(woken), len(w.woken)) {
		if w.all || w.woken[s] {
			woken[s] = true
		}
		w.woken[s] = false
	}
	w.all = false
}

// Close closes C. The store calls it once, when no Wake can follow.
func (w *Wakeups) Close() { close(w.c) }
