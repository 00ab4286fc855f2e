package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFanoutExactlyOnceWhenTheWorkerIsKilled kills -9 the only worker
// process while it fans a message out to 1,000 subscriptions, and starts
// another: fan-out happens exactly once (API.md §7), so the message ends
// COMPLETED with exactly one delivery event per subscription. A delivery
// request in flight at the kill may be sent again after its lease expires:
// that is the delivery event's at-least-once promise, so a subscriber
// receives a duplicate only when its delivery's history shows a
// lease-expired attempt.
func TestFanoutExactlyOnceWhenTheWorkerIsKilled(t *testing.T) {
	// Killed as soon as the message is DISPATCHED or a delivery arrived
	// (usually right after the plan was recorded), and killed with about a
	// third of the deliveries sent (some requests in flight).
	t.Run("at the plan", func(t *testing.T) { fanoutKilled(t, 1) })
	t.Run("while delivering", func(t *testing.T) { fanoutKilled(t, 300) })
}

// fanoutKilled runs TestFanoutExactlyOnceWhenTheWorkerIsKilled, killing the
// worker once the message is DISPATCHED (killAfter 1) or once killAfter
// requests arrived.
func fanoutKilled(t *testing.T, killAfter int64) {
	const (
		subs       = 1000
		visibility = 2 * time.Second
		app        = testApp
		msgID      = "big-1"
	)
	var killNow = make(chan struct{})
	var arrived atomic.Int64
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if arrived.Add(1) == killAfter {
			close(killNow)
		}
		time.Sleep(2 * time.Millisecond)
		ok(w, r, a)
	})
	workerEnv := []string{"CASSATA_VISIBILITY_TIMEOUT=" + visibility.String(), "CASSATA_WORKER_CONCURRENCY=16"}
	base, workers, archive := topicProcs(t, e, 1, workerEnv...)
	first := workers[0]

	started := time.Now()
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range ids {
				subscribe(t, base, app, fmt.Sprintf("sub-%04d", i), map[string]any{"topic": "big", "url": e.dest.URL("/big")})
			}
		})
	}
	for i := range subs {
		ids <- i
	}
	close(ids)
	wg.Wait()
	t.Logf("%d subscriptions created in %s", subs, time.Since(started))

	apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
		"app": app, "topic": "big", "id": msgID, "body": map[string]any{"n": 1},
	}, http.StatusCreated, nil)
	published := time.Now()

	// Kill as soon as the message is DISPATCHED or a delivery arrived.
	polls := 0
	why := ""
	for why == "" {
		select {
		case <-killNow:
			why = fmt.Sprintf("%d deliveries arrived", killAfter)
		case <-time.After(5 * time.Millisecond):
			polls++
			if m := getMessage(t, base, app, msgID); killAfter == 1 && m.Status != "PENDING" {
				why = "the message is " + m.Status
			}
		case <-first.Exited():
			t.Fatalf("worker exited before the kill:\n%s", first.Output())
		}
		if time.Since(published) > 20*time.Second {
			t.Fatalf("the message was not fanned out within 20s; worker output:\n%s", first.Output())
		}
	}
	if err := first.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.Exited()
	killed := time.Now()
	atKill := len(e.dest.all())
	m := getMessage(t, base, app, msgID)
	created := 0
	for _, d := range m.Deliveries {
		if d.Status != "" {
			created++
		}
	}
	t.Logf("killed %s after publishing (%s, %d polls): %d of %d planned deliveries created, %d requests arrived",
		killed.Sub(published), why, polls, created, len(m.Deliveries), atKill)

	second := startCassata(t, e, "worker", append([]string{archive}, workerEnv...)...)
	second.workerID(t)
	m = waitMessage(t, base, app, msgID, "COMPLETED", 40*time.Second, nil)
	t.Logf("COMPLETED %s after the kill, %s after publishing", time.Since(killed), time.Since(published))

	// Exactly one delivery event per subscriber.
	if len(m.Deliveries) != subs {
		t.Fatalf("%d deliveries, want %d", len(m.Deliveries), subs)
	}
	seen := map[string]bool{}
	for _, d := range m.Deliveries {
		if seen[d.EventID] {
			t.Errorf("delivery event %s listed twice", d.EventID)
		}
		seen[d.EventID] = true
		if d.EventID != msgID+"~"+d.Subscription || d.Status != "COMPLETED" {
			t.Errorf("delivery %+v, want %s~%s COMPLETED", d, msgID, d.Subscription)
		}
	}
	var found []eventView
	waitFor(t, 15*time.Second, func() string {
		found = searchEvents(t, base, "app", app, "q", msgID+"~")
		if len(found) < subs {
			return fmt.Sprintf("search q=%s~ finds %d delivery events, want %d", msgID, len(found), subs)
		}
		return ""
	})
	t.Logf("search finds the %d delivery events %s after the kill", len(found), time.Since(killed))
	byID := map[string]eventView{}
	for _, ev := range found {
		if _, dup := byID[ev.ID]; dup {
			t.Errorf("search lists %s twice", ev.ID)
		}
		byID[ev.ID] = ev
	}
	if len(found) != subs || len(byID) != subs {
		t.Errorf("search finds %d delivery events (%d distinct), want %d", len(found), len(byID), subs)
	}

	// Every subscriber got its request; a duplicate only where the delivery's lease expired.
	got := map[string]int{}
	for _, a := range e.dest.all() {
		got[a.Header.Get("Cassata-Subscription-Id")]++
	}
	dups := 0
	for i := range subs {
		sub := fmt.Sprintf("sub-%04d", i)
		switch n := got[sub]; {
		case n == 0:
			t.Errorf("%s received no request", sub)
		case n > 1:
			dups++
			if ev := getEvent(t, base, app, msgID+"~"+sub); !ev.leaseExpired() {
				t.Errorf("%s received %d requests, but its delivery %+v shows no lease-expired attempt", sub, n, ev)
			}
		}
	}
	if len(got) != subs {
		t.Errorf("requests for %d distinct subscriptions, want %d", len(got), subs)
	}
	t.Logf("%d requests in all, %d subscribers got a duplicate after a lease expired", len(e.dest.all()), dups)
}

// subDest is a destination with a handler per subscription (by the
// Cassata-Subscription-Id header) and a rollback endpoint counting its
// requests by Cassata-Rollback-Of.
type subDest struct {
	*destination
	mu       sync.Mutex
	handlers map[string]handlerFunc
}

func newSubDest(t *testing.T, handlers map[string]handlerFunc) *subDest {
	s := &subDest{handlers: handlers}
	s.destination = newDestination(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if strings.HasPrefix(r.URL.Path, "/rb/") {
			ok(w, r, a)
			return
		}
		s.mu.Lock()
		h := s.handlers[r.Header.Get("Cassata-Subscription-Id")]
		s.mu.Unlock()
		if h == nil {
			h = ok
		}
		h(w, r, a)
	})
	return s
}

// rollbacks counts the requests at the rollback endpoint by Cassata-Rollback-Of.
func (s *subDest) rollbacks(t *testing.T, msgID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, a := range s.all() {
		if !strings.HasPrefix(a.Path, "/rb/") {
			continue
		}
		of := a.Header.Get("Cassata-Rollback-Of")
		out[of]++
		if got := a.Header.Get("Cassata-Message-Id"); got != msgID {
			t.Errorf("rollback of %s carries Cassata-Message-Id %q, want %q", of, got, msgID)
		}
		if want := "/rb/" + strings.TrimPrefix(of, msgID+"~"); a.Path != want || a.Method != http.MethodPost {
			t.Errorf("rollback of %s: %s %s, want POST %s", of, a.Method, a.Path, want)
		}
	}
	return out
}

// answer returns a handler answering code after sleeping d.
func answer(code int, d time.Duration) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ arrival) {
		time.Sleep(d)
		w.WriteHeader(code)
	}
}

// TestAllOrNothingThroughProcesses: all_or_nothing and independent messages
// whose deliveries fail, through a server and a worker process.
func TestAllOrNothingThroughProcesses(t *testing.T) {
	t.Parallel()
	t.Run("a 400 rolls back", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		base, _, _ := topicProcs(t, e, 1)
		d := newSubDest(t, map[string]handlerFunc{
			"a-done":    ok,
			"b-bad":     answer(http.StatusBadRequest, 300*time.Millisecond), // fails after a-done completed
			"c-slow":    answer(http.StatusOK, 1500*time.Millisecond),        // in flight when b-bad fails
			"d-waiting": answer(http.StatusServiceUnavailable, 0),            // then PENDING for 30s
		})
		for _, s := range []string{"a-done", "b-bad", "c-slow"} {
			subscribe(t, base, testApp, s, map[string]any{"url": d.URL("/to/" + s), "rollback_url": d.URL("/rb/" + s)})
		}
		subscribe(t, base, testApp, "d-waiting", map[string]any{"url": d.URL("/to/d-waiting"), "rollback_url": d.URL("/rb/d-waiting"),
			"max_attempts": 3, "min_backoff": "30s", "max_backoff": "30s"})
		const msgID = "aon-a"
		apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
			"app": testApp, "topic": "orders", "id": msgID, "mode": "all_or_nothing", "body": map[string]any{"order": 7},
		}, http.StatusCreated, nil)
		seen := map[string]bool{}
		m := waitMessage(t, base, testApp, msgID, "ROLLED_BACK", 30*time.Second, seen)
		if seen["FAILED"] {
			t.Errorf("the all_or_nothing message went through FAILED (seen %v)", seen)
		}
		want := map[string]string{"a-done": "COMPLETED", "b-bad": "FAILED", "c-slow": "COMPLETED", "d-waiting": "CANCELLED"}
		checkDeliveries(t, m, want)
		checkRollbacks(t, d, m, msgID, "a-done", "c-slow")
		if ev := getEvent(t, base, testApp, msgID+"~d-waiting"); ev.Attempts != 1 {
			t.Errorf("the waiting delivery made %d attempts before it was cancelled, want 1", ev.Attempts)
		}
		if n := len(d.of(msgID + "~d-waiting")); n != 1 {
			t.Errorf("the waiting delivery was sent %d times, want 1", n)
		}
	})
	t.Run("a 503 exhausted rolls back", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		base, _, _ := topicProcs(t, e, 1)
		d := newSubDest(t, map[string]handlerFunc{"c-flaky": answer(http.StatusServiceUnavailable, 0)})
		for _, s := range []string{"a-ok", "b-ok"} {
			subscribe(t, base, testApp, s, map[string]any{"url": d.URL("/to/" + s), "rollback_url": d.URL("/rb/" + s)})
		}
		subscribe(t, base, testApp, "c-flaky", map[string]any{"url": d.URL("/to/c-flaky"), "rollback_url": d.URL("/rb/c-flaky"),
			"max_attempts": 2, "min_backoff": "100ms", "max_backoff": "100ms"})
		const msgID = "aon-b"
		apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
			"app": testApp, "topic": "orders", "id": msgID, "mode": "all_or_nothing", "body": map[string]any{"order": 8},
		}, http.StatusCreated, nil)
		seen := map[string]bool{}
		m := waitMessage(t, base, testApp, msgID, "ROLLED_BACK", 30*time.Second, seen)
		if seen["FAILED"] {
			t.Errorf("the all_or_nothing message went through FAILED (seen %v)", seen)
		}
		checkDeliveries(t, m, map[string]string{"a-ok": "COMPLETED", "b-ok": "COMPLETED", "c-flaky": "SERVICE_UNAVAILABLE"})
		checkRollbacks(t, d, m, msgID, "a-ok", "b-ok")
		if n := len(d.of(msgID + "~c-flaky")); n != 2 {
			t.Errorf("the flaky delivery was sent %d times, want 2", n)
		}
	})
	t.Run("independent", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		base, _, _ := topicProcs(t, e, 1)
		var healed atomic.Bool
		d := newSubDest(t, map[string]handlerFunc{
			"b-bad": answer(http.StatusBadRequest, 0),
			"c-flaky": func(w http.ResponseWriter, r *http.Request, a arrival) {
				if healed.Load() {
					ok(w, r, a)
					return
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			},
		})
		for _, s := range []string{"a-ok", "b-bad"} {
			subscribe(t, base, testApp, s, map[string]any{"url": d.URL("/to/" + s), "rollback_url": d.URL("/rb/" + s)})
		}
		subscribe(t, base, testApp, "c-flaky", map[string]any{"url": d.URL("/to/c-flaky"), "rollback_url": d.URL("/rb/c-flaky"),
			"max_attempts": 2, "min_backoff": "100ms", "max_backoff": "100ms"})
		const msgID = "ind-1"
		apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
			"app": testApp, "topic": "orders", "id": msgID, "body": map[string]any{"order": 9},
		}, http.StatusCreated, nil)
		m := waitMessage(t, base, testApp, msgID, "FAILED", 30*time.Second, nil)
		checkDeliveries(t, m, map[string]string{"a-ok": "COMPLETED", "b-bad": "FAILED", "c-flaky": "SERVICE_UNAVAILABLE"})
		if len(m.Rollbacks) != 0 {
			t.Errorf("an independent message has rollbacks %+v", m.Rollbacks)
		}
		if rb := d.rollbacks(t, msgID); len(rb) != 0 {
			t.Errorf("an independent message's deliveries were compensated: %v", rb)
		}
		// The Failures view's data: the 5xx one is SERVICE_UNAVAILABLE.
		waitFor(t, 10*time.Second, func() string {
			evs := searchEvents(t, base, "app", testApp, "status", "SERVICE_UNAVAILABLE")
			if !slices.ContainsFunc(evs, func(ev eventView) bool { return ev.ID == msgID+"~c-flaky" }) {
				return fmt.Sprintf("GET /v1/events?status=SERVICE_UNAVAILABLE lists %d events, not %s~c-flaky", len(evs), msgID)
			}
			return ""
		})
		bad := getEvent(t, base, testApp, msgID+"~b-bad")
		if bad.Status != "FAILED" || bad.Attempts != 1 || len(bad.History) != 1 || bad.History[0].StatusCode == nil || *bad.History[0].StatusCode != 400 {
			t.Errorf("the 400 delivery: %+v, want FAILED after one attempt answered 400", bad)
		}

		healed.Store(true)
		var retried eventView
		apiJSON(t, http.MethodPost, base+"/v1/events/"+testApp+"/"+msgID+"~c-flaky/retry", nil, http.StatusOK, &retried)
		if retried.Status != "PENDING" && retried.Status != "PROCESSING" {
			t.Errorf("retried delivery is %s", retried.Status)
		}
		if m := getMessage(t, base, testApp, msgID); m.Status != "DISPATCHED" {
			// Delivered already? Then it must have completed.
			if ev := getEvent(t, base, testApp, msgID+"~c-flaky"); ev.Status != "COMPLETED" {
				t.Errorf("after the retry the message is %s, want DISPATCHED", m.Status)
			}
		}
		waitFor(t, 15*time.Second, func() string {
			if ev := getEvent(t, base, testApp, msgID+"~c-flaky"); ev.Status != "COMPLETED" {
				return "the retried delivery is " + ev.Status
			}
			return ""
		})
		m = getMessage(t, base, testApp, msgID)
		checkDeliveries(t, m, map[string]string{"a-ok": "COMPLETED", "b-bad": "FAILED", "c-flaky": "COMPLETED"})
		if m.Status != "FAILED" {
			t.Errorf("after the retried delivery completed the message is %s, want FAILED (b-bad failed)", m.Status)
		}
	})
}

// checkDeliveries checks the deliveries' statuses by subscription.
func checkDeliveries(t *testing.T, m msgView, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, d := range m.Deliveries {
		got[d.Subscription] = d.Status
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("message %s deliveries %v, want %v", m.ID, got, want)
	}
}

// checkRollbacks checks that exactly the deliveries to subs were
// compensated, each once, at its rollback_url, and listed COMPLETED.
func checkRollbacks(t *testing.T, d *subDest, m msgView, msgID string, subs ...string) {
	t.Helper()
	want := map[string]int{}
	listed := map[string]string{}
	for _, s := range subs {
		want[msgID+"~"+s] = 1
		listed[s] = "COMPLETED"
	}
	if got := d.rollbacks(t, msgID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rollback requests by Cassata-Rollback-Of %v, want %v", got, want)
	}
	got := map[string]string{}
	for _, r := range m.Rollbacks {
		got[r.Subscription] = r.Status
		if r.EventID != msgID+"!"+r.Subscription {
			t.Errorf("rollback event %s, want %s!%s", r.EventID, msgID, r.Subscription)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(listed) {
		t.Errorf("rollbacks listed %v, want %v", got, listed)
	}
}
