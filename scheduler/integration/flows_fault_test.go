package integration

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
)

// flowSweep is how often every worker pumps every flow key
// (scheduler/worker/flow.go): held events of a key whose permits a dead
// worker held go at the first sweep after those permits' deadlines.
const flowSweep = 2 * time.Second

// TestFlowPermitsComeBackAfterKill kills -9 a worker process while it holds
// both permits of a key with parallelism 2 (the destination holds those
// requests), with 8 more events of the key held. The permits' deadlines are
// within the visibility timeout of the kill, so they come back: the other
// worker delivers the held events and, after their leases, the two killed
// ones again; no event is lost and the key never has more than 2 in flight.
func TestFlowPermitsComeBackAfterKill(t *testing.T) {
	t.Parallel()
	const (
		n          = 10
		parLimit   = 2
		key        = "fk"
		visibility = 3 * time.Second
	)
	srv := redistest.Start(t)
	// The first two requests hang until their worker dies; the rest are
	// answered at once.
	started := make(chan string, n)
	d := newFlowDest(t, func(w http.ResponseWriter, r *http.Request, a flowArrival) {
		select {
		case started <- a.ID:
			<-r.Context().Done()
			return
		default:
		}
		w.WriteHeader(http.StatusOK)
	})
	// One worker first: it claims the events and takes both permits.
	f := startFlowFleet(t, srv.URL(), false, "", 1, "CASSATA_VISIBILITY_TIMEOUT="+visibility.String())
	// started has room for n; only the first two block.
	for range n - parLimit {
		started <- "filler"
	}
	f.putFlow(t, flowApp, key, flowLimits{Parallelism: ptr(parLimit)})
	evs := d.batch(flowApp, key, "kill", n, func(int) time.Time { return time.Now() })
	f.create(t, evs)

	waitFor(t, 15*time.Second, func() string {
		if c := d.current(key); c != parLimit {
			return fmt.Sprintf("%d requests of the key in flight, want %d", c, parLimit)
		}
		return ""
	})
	// Both permits are held by worker-1, the other events wait as PENDING.
	rdb := srv.Client()
	ns := f.opts.Namespace
	runKey := ns + ":{" + ns + ":fl:" + flowApp + ":" + key + "}:run"
	waitFor(t, 10*time.Second, func() string {
		if st := f.getFlow(t, flowApp, key); st.InFlight != parLimit || st.Held != n-parLimit {
			return fmt.Sprintf("before the kill: %+v, want %d in flight and %d held", st, parLimit, n-parLimit)
		}
		return ""
	})
	w2 := f.startWorker(t)
	f.waitWorker(t, w2)
	if got := d.ofKey(key); len(got) != 0 {
		t.Fatalf("%d requests of the key ended before the kill, want none: %+v", len(got), got)
	}

	w1 := f.workers[0]
	if err := w1.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w1.Exited()
	killed := time.Now()
	// The permits end within the visibility timeout of the kill: their
	// deadlines in Redis say so (they are pushed out while requests run,
	// by one visibility timeout from then at most).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	permits, err := rdb.ZRangeWithScores(ctx, runKey, 0, -1).Result()
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range permits {
		if dl := time.UnixMilli(int64(p.Score)); dl.After(killed.Add(visibility)) {
			t.Errorf("permit %s ends %s after the kill, after the visibility timeout %s", p.Member, dl.Sub(killed), visibility)
		}
	}
	if len(permits) != parLimit {
		t.Errorf("after the kill %d permits, want the %d the killed worker held: %v", len(permits), parLimit, permits)
	}

	// Worker-2 delivers the held events once the permits come back: at the
	// first sweep after their deadlines.
	first := d.waitKey(t, key, 1, visibility+flowSweep+10*time.Second)
	firstAfter := first[0].Start.Sub(killed)
	if limit := visibility + flowSweep + time.Second; firstAfter > limit {
		t.Errorf("the first held event went %s after the kill, want at most %s (visibility %s, sweep %s)", firstAfter, limit, visibility, flowSweep)
	}
	if first[0].Start.Before(killed) {
		t.Errorf("a held event went before the kill")
	}

	// Every event delivered: the two killed ones again, as attempt 2 after
	// their leases expired, the others once as attempt 1.
	got := d.waitKey(t, key, n, 30*time.Second)
	answered := map[string]flowArrival{}
	for _, a := range got {
		if _, dup := answered[a.ID]; dup {
			t.Errorf("%s answered twice", a.ID)
		}
		answered[a.ID] = a
	}
	if len(answered) != n {
		t.Errorf("%d of %d events answered", len(answered), n)
	}
	killedIDs := 0
	for _, ev := range evs {
		got := f.waitEvent(t, flowApp, ev.ID, "COMPLETED", 15*time.Second)
		switch {
		case got.Attempts == 2 && len(got.History) == 2 && got.History[0].Error != nil:
			killedIDs++
			if a := answered[ev.ID]; a.Attempt != 2 {
				t.Errorf("%s, in flight at the kill, answered with Cassata-Attempt %d, want 2", ev.ID, a.Attempt)
			}
		case got.Attempts == 1 && len(got.History) == 1:
			if a := answered[ev.ID]; a.Attempt != 1 {
				t.Errorf("%s answered with Cassata-Attempt %d, want 1 (a held event uses no attempt)", ev.ID, a.Attempt)
			}
		default:
			t.Errorf("%s: %d attempts, history %+v", ev.ID, got.Attempts, got.History)
		}
	}
	if killedIDs != parLimit {
		t.Errorf("%d events with a lost first attempt, want the %d in flight at the kill", killedIDs, parLimit)
	}
	if m := d.maxInFlight(key); m > parLimit {
		t.Errorf("%d requests of the key in flight at once, parallelism %d", m, parLimit)
	}
	waitFor(t, 5*time.Second, func() string {
		if st := f.getFlow(t, flowApp, key); st.InFlight != 0 || st.Held != 0 {
			return fmt.Sprintf("after every delivery: %+v", st)
		}
		return ""
	})
	t.Logf("kill -9 with %d permits held (visibility %s): the first held event went %s after the kill, all %d delivered %s after it",
		parLimit, visibility, firstAfter.Round(time.Millisecond), n, got[len(got)-1].Start.Sub(killed).Round(time.Millisecond))
	if !w2.Running() {
		t.Errorf("worker-2 exited: %s", w2.State())
	}
}
