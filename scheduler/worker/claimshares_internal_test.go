package worker

import (
	"context"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

func cr(shard, batch int) scheduler.ClaimRequest {
	return scheduler.ClaimRequest{Shard: shard, Batch: batch}
}

func TestClaimShares(t *testing.T) {
	t.Parallel()
	w := &Worker{cfg: Config{Batch: 10}}
	total := func(reqs []scheduler.ClaimRequest) int {
		n := 0
		for _, r := range reqs {
			n += r.Batch
		}
		return n
	}
	hotOf := func(shards int, hot ...int) []bool {
		h := make([]bool, shards)
		for _, s := range hot {
			h[s] = true
		}
		return h
	}
	for _, tt := range []struct {
		name        string
		free, start int
		hot         []bool
		backlog     bool
		want        []scheduler.ClaimRequest
	}{
		{"fewer slots than shards: all from the shard at start", 3, 2, hotOf(4, 0), false,
			[]scheduler.ClaimRequest{cr(2, 3)}},
		{"as many slots as shards: one each", 4, 1, hotOf(4), false, []scheduler.ClaimRequest{cr(1, 1), cr(2, 1), cr(3, 1), cr(0, 1)}},
		{"none hot: split evenly, the remainder from start", 10, 0, hotOf(4), false,
			[]scheduler.ClaimRequest{cr(0, 3), cr(1, 3), cr(2, 2), cr(3, 2)}},
		{"hot shards share the rest, the others one each", 10, 0, hotOf(4, 1, 3), false,
			[]scheduler.ClaimRequest{cr(0, 1), cr(1, 4), cr(2, 1), cr(3, 4)}},
		{"at most Batch per shard", 100, 0, hotOf(4, 2), false,
			[]scheduler.ClaimRequest{cr(0, 1), cr(1, 1), cr(2, 10), cr(3, 1)}},
		{"backlog: claimShareMin per shard from start", 33, 3, hotOf(16), true,
			[]scheduler.ClaimRequest{cr(3, 10), cr(4, 10)}},
		{"backlog: fewer than 2 claimShareMin, one shard", 20, 15, hotOf(16, 1), true,
			[]scheduler.ClaimRequest{cr(15, 10)}},
		{"backlog: one shard per claimShareMin", 40, 15, hotOf(16), true,
			[]scheduler.ClaimRequest{cr(15, 10), cr(0, 10)}},
		{"backlog with many slots: every shard, at most Batch", 400, 2, hotOf(4), true,
			[]scheduler.ClaimRequest{cr(2, 10), cr(3, 10), cr(0, 10), cr(1, 10)}},
		{"backlog, fewer slots than shards: all from the shard at start", 5, 1, hotOf(16), true,
			[]scheduler.ClaimRequest{cr(1, 5)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			order := make([]int, len(tt.hot)) // every shard, from start on
			for i := range order {
				order[i] = (tt.start + i) % len(tt.hot)
			}
			got := w.claimShares(tt.free, order, tt.hot, tt.backlog)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
			if total(got) > tt.free {
				t.Errorf("asks for %d events with %d free slots", total(got), tt.free)
			}
		})
	}
}

// TestGatherSlots: a saturated worker with due events waiting claims once a
// quarter of its slots are free, or after claimLinger with fewer.
func TestGatherSlots(t *testing.T) {
	t.Parallel()
	newWorker := func(inflight int) *Worker {
		w := &Worker{cfg: Config{Concurrency: 40}, freed: make(chan struct{}, 1), clock: scheduler.SystemClock{}, started: time.Now()}
		w.inflight.Store(int64(inflight))
		return w
	}
	timer := time.NewTimer(0)
	timer.Stop()

	// Slots free one by one while it waits: it claims once 10 are (given
	// time for them: a busy machine can take more than claimLinger to run
	// the goroutine that frees them).
	busy := newWorker(39)
	busy.gatherLinger = time.Minute
	go func() {
		for range 12 {
			busy.inflight.Add(-1)
			select {
			case busy.freed <- struct{}{}:
			default:
			}
		}
	}()
	began := time.Now()
	if free := busy.gatherSlots(context.Background(), timer, 1); free < 10 {
		t.Errorf("gathered %d free slots, want at least a quarter of 40", free)
	}
	if waited := time.Since(began); waited > 10*time.Second {
		t.Errorf("waited %v for the slots to free, want it to claim as soon as a quarter is", waited)
	}

	// None frees: it gives up after claimLinger with what it has.
	w := newWorker(38)
	began = time.Now()
	if free := w.gatherSlots(context.Background(), timer, 2); free != 2 {
		t.Errorf("gathered %d, want the 2 it had", free)
	}
	if waited := time.Since(began); waited < claimLinger || waited > claimLinger+time.Second {
		t.Errorf("waited %v, want about claimLinger (%v)", waited, claimLinger)
	}

	// Enough free already: no wait at all.
	w = newWorker(20)
	began = time.Now()
	if free := w.gatherSlots(context.Background(), timer, 20); free != 20 || time.Since(began) > claimLinger/2 {
		t.Errorf("gathered %d after %v, want 20 at once", free, time.Since(began))
	}
}

// TestBacklogged: only a round that took every free slot and left due
// events behind makes the next one gather slots and claim from few shards;
// a worker with slots to spare (steady load, even with an event due right
// after) and a failed round do not.
func TestBacklogged(t *testing.T) {
	for _, tt := range []struct {
		failed        bool
		free          int
		more, dueLeft bool
		want          bool
	}{
		{false, 0, true, false, true},
		{false, 0, false, true, true},
		{false, 0, false, false, false}, // saturated, nothing due left
		{false, 40, false, true, false}, // slots to spare: steady load
		{false, 3, true, true, false},
		{true, 0, true, true, false},
	} {
		if got := backlogged(tt.failed, tt.free, tt.more, tt.dueLeft); got != tt.want {
			t.Errorf("backlogged(%v, %d, %v, %v) = %v, want %v", tt.failed, tt.free, tt.more, tt.dueLeft, got, tt.want)
		}
	}
}
