package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
)

// TestCancelRacesWithClaim cancels events while a worker claims them: every
// event must end either CANCELLED and never delivered, or delivered with the
// cancel refused — never both, never neither.
func TestCancelRacesWithClaim(t *testing.T) {
	t.Parallel()
	const n = 300
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		time.Sleep(10 * time.Millisecond) // keep slots busy so claims spread out
		ok(w, r, a)
	})
	due := time.Now().Add(500 * time.Millisecond)
	evs := make([]*scheduler.Event, n)
	ids := make([]string, n)
	for i := range evs {
		ids[i] = fmt.Sprintf("cancel-%03d", i)
		evs[i] = e.event(ids[i])
		evs[i].DueAt = due
	}
	e.scheduleAll(evs)
	// Small batches and few slots: claiming takes a while, so the cancels
	// land before, between and after claims.
	e.startWorker(nil, worker.Config{Concurrency: 20, Batch: 4})

	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	time.Sleep(time.Until(due))
	cancelled := make(map[string]bool, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				id := ids[i]
				_, err := e.sched.Cancel(ctx, testApp, id)
				var se *scheduler.StatusError
				switch {
				case err == nil:
					mu.Lock()
					cancelled[id] = true
					mu.Unlock()
				case errors.As(err, &se) && errors.Is(err, scheduler.ErrConflict):
					if se.Status == scheduler.StatusPending || se.Status == scheduler.StatusCancelled {
						t.Errorf("cancel %s refused in status %s", id, se.Status)
					}
				default:
					t.Errorf("cancel %s: %v", id, err)
				}
			}
		})
	}
	wg.Wait()

	for _, id := range ids {
		if cancelled[id] {
			if ev := e.get(id); ev.Status != scheduler.StatusCancelled {
				t.Errorf("%s: cancel succeeded but status is %s", id, ev.Status)
			}
			continue
		}
		if ev := e.waitFinal(id, 10*time.Second); ev.Status != scheduler.StatusCompleted || ev.Attempts != 1 {
			t.Errorf("%s: cancel refused, status %s after %d attempts, want COMPLETED after 1", id, ev.Status, ev.Attempts)
		}
	}
	// Let any wrongly claimed cancelled event reach the destination.
	time.Sleep(300 * time.Millisecond)
	got := e.dest.byID()
	for _, id := range ids {
		switch arr := got[id]; {
		case cancelled[id] && len(arr) > 0:
			t.Errorf("%s was cancelled and delivered %d times", id, len(arr))
		case !cancelled[id] && len(arr) != 1:
			t.Errorf("%s was not cancelled and delivered %d times, want 1", id, len(arr))
		}
	}
	t.Logf("%d cancelled, %d delivered", len(cancelled), n-len(cancelled))
	e.assertNothingInFlight()
}

// TestTwoWorkersDeliverExactlyOnce runs two workers, each with its own Redis
// connection, over the same shards: 2,000 events due within one second are
// each delivered once, none before its due time.
func TestTwoWorkersDeliverExactlyOnce(t *testing.T) {
	const n = 2000
	e := setup(t, nil)
	w1 := e.startWorker(e.newStore(), worker.Config{})
	w2 := e.startWorker(e.newStore(), worker.Config{})

	base := time.Now().Add(700 * time.Millisecond)
	evs := make([]*scheduler.Event, n)
	due := make(map[string]time.Time, n)
	for i := range evs {
		ev := e.event(fmt.Sprintf("pair-%04d", i))
		ev.DueAt = base.Add(time.Duration(rand.IntN(1000)) * time.Millisecond).Truncate(time.Millisecond)
		evs[i] = ev
		due[ev.ID] = ev.DueAt
	}
	start := time.Now()
	e.scheduleAll(evs)
	t.Logf("scheduled %d events in %s", n, time.Since(start))

	waitFor(t, 20*time.Second, func() string {
		if got := len(e.dest.byID()); got < n {
			return fmt.Sprintf("%d of %d events delivered", got, n)
		}
		return ""
	})
	// Every delivery must be recorded too, then no duplicate may follow.
	waitFor(t, 10*time.Second, func() string {
		for _, ev := range evs {
			if st := e.get(ev.ID).Status; st != scheduler.StatusCompleted {
				return fmt.Sprintf("%s is %s", ev.ID, st)
			}
		}
		return ""
	})

	perWorker := map[string]int{}
	var lateness []time.Duration
	for id, arr := range e.dest.byID() {
		if _, ok := due[id]; !ok {
			t.Errorf("unknown event %q delivered", id)
			continue
		}
		if len(arr) != 1 {
			t.Errorf("%s delivered %d times", id, len(arr))
		}
		for _, a := range arr {
			if a.At.Before(due[id]) {
				t.Errorf("%s arrived %s before its due time", id, due[id].Sub(a.At))
			}
			lateness = append(lateness, a.At.Sub(due[id]))
		}
	}
	for _, ev := range evs {
		perWorker[e.get(ev.ID).History[0].Worker]++
	}
	slices.Sort(lateness)
	t.Logf("deliveries per worker: %s=%d %s=%d; lateness p50 %s, p99 %s, max %s",
		w1.ID(), perWorker[w1.ID()], w2.ID(), perWorker[w2.ID()],
		lateness[len(lateness)/2], lateness[len(lateness)*99/100], lateness[len(lateness)-1])
	e.assertNothingInFlight()
}
