package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// Recurring schedules through real processes (API.md §8): schedules go
// through a server's HTTP API, worker processes deliver their occurrences
// and chain each to the next, and a destination in the test process
// receives them. Every schedule here is `every 1s` from a whole second, so
// an occurrence's id is "<schedule id>@<ms>" with ms a multiple of 1000.

// runView is one of a schedule's last_runs.
type runView struct {
	EventID string  `json:"event_id"`
	DueAt   string  `json:"due_at"`
	Status  *string `json:"status"`
}

// scheduleView is a schedule as the v1 API shows it (the fields the tests read).
type scheduleView struct {
	App      string    `json:"app"`
	ID       string    `json:"id"`
	Every    string    `json:"every"`
	URL      string    `json:"url"`
	Paused   bool      `json:"paused"`
	NextAt   *string   `json:"next_at"`
	LastRuns []runView `json:"last_runs"`
}

// nextMS is next_at in Unix ms, 0 when null.
func (s scheduleView) nextMS(t testing.TB) int64 {
	t.Helper()
	if s.NextAt == nil {
		return 0
	}
	at, err := time.Parse(time.RFC3339Nano, *s.NextAt)
	if err != nil {
		t.Fatalf("next_at %q: %v", *s.NextAt, err)
	}
	return at.UnixMilli()
}

// occMS is the occurrence time (Unix ms) of an event id of schedule sid, or -1.
func occMS(sid, eventID string) int64 {
	rest, ok := strings.CutPrefix(eventID, sid+"@")
	if !ok {
		return -1
	}
	ms, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return -1
	}
	return ms
}

// onGrid reports whether ms is an occurrence of an every-1s schedule started on a whole second.
func onGrid(ms int64) bool { return ms > 0 && ms%1000 == 0 }

// schedBody is the body of a create or replace of schedule id, every 1s
// from the next whole second but one, to url.
func schedBody(id, url string, start time.Time) map[string]any {
	return map[string]any{"app": testApp, "id": id, "every": "1s", "start_at": start.Format(time.RFC3339Nano),
		"url": url, "headers": map[string]string{"X-Sched": id}, "body": map[string]any{"tick": true}}
}

// firstStart is a start_at on a whole second, at least 1s from now.
func firstStart() time.Time { return time.Now().UTC().Truncate(time.Second).Add(2 * time.Second) }

// chainArrivals returns the destination's arrivals of schedule sid's
// occurrences (on the grid), in arrival order.
func chainArrivals(d *destination, sid string) []arrival {
	var out []arrival
	for _, a := range d.all() {
		if ms := occMS(sid, a.ID); onGrid(ms) {
			out = append(out, a)
		}
	}
	return out
}

// waitOccurrence waits for an arrival of an occurrence of sid due after
// ms and returns it.
func waitOccurrence(t testing.TB, d *destination, sid string, after int64, timeout time.Duration) arrival {
	t.Helper()
	var got arrival
	waitFor(t, timeout, func() string {
		for _, a := range chainArrivals(d, sid) {
			if occMS(sid, a.ID) > after {
				got = a
				return ""
			}
		}
		return fmt.Sprintf("no occurrence of %s due after %d arrived (%d arrivals in all)", sid, after, len(d.all()))
	})
	return got
}

func getSchedule(t testing.TB, base, id string) scheduleView {
	t.Helper()
	var s scheduleView
	apiJSON(t, http.MethodGet, base+"/v1/schedules/"+testApp+"/"+id, nil, http.StatusOK, &s)
	return s
}

// justAfterOccurrence waits for the next occurrence of sid to arrive and
// for the chain to have moved past it, so that the next ~second is free of
// occurrences (for steps that must not race one). It returns the schedule.
func justAfterOccurrence(t testing.TB, base string, d *destination, sid string) scheduleView {
	t.Helper()
	a := waitOccurrence(t, d, sid, time.Now().UnixMilli(), 5*time.Second)
	var s scheduleView
	waitFor(t, 5*time.Second, func() string {
		s = getSchedule(t, base, sid)
		if s.nextMS(t) > occMS(sid, a.ID) {
			return ""
		}
		return fmt.Sprintf("next_at %v not past the occurrence %s yet", s.NextAt, a.ID)
	})
	return s
}

// checkArrivals asserts what holds of every arrival of schedule sid: its id
// is "<sid>@<ms>", it came no earlier than ms, it carries
// Cassata-Schedule-Id; and a chained occurrence (ms on the grid) arrived
// once (when once).
func checkArrivals(t *testing.T, d *destination, sid string, once bool) {
	t.Helper()
	n := map[string]int{}
	for _, a := range d.all() {
		ms := occMS(sid, a.ID)
		if ms <= 0 {
			t.Errorf("arrival with event id %q, want %s@<ms>", a.ID, sid)
			continue
		}
		n[a.ID]++
		if a.At.UnixMilli() < ms {
			t.Errorf("%s arrived %s early", a.ID, time.UnixMilli(ms).Sub(a.At))
		}
		if got := a.Header.Get("Cassata-Schedule-Id"); got != sid {
			t.Errorf("%s: Cassata-Schedule-Id %q, want %q", a.ID, got, sid)
		}
		if got := a.Header.Get("X-Sched"); got != sid {
			t.Errorf("%s: the template's header X-Sched is %q", a.ID, got)
		}
	}
	if once {
		for id, c := range n {
			if c != 1 {
				t.Errorf("%s arrived %d times, want once", id, c)
			}
		}
	}
}

// TestScheduleThroughProcesses: a schedule every 1s through a server's
// API, delivered by worker processes (on one redis-server, on a 3-master
// Redis Cluster) and by `cassata dev`.
func TestScheduleThroughProcesses(t *testing.T) {
	t.Parallel()
	t.Run("server and workers", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		base, _, _ := topicProcs(t, e, 2)
		schedulesFlow(t, base, e.dest)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3)
		f := startFleet(t, fleetOptions{RedisURL: c.Seeds(), Cluster: true, Namespace: "sched", Servers: 1, Workers: 1,
			Env: []string{"CASSATA_POLL_INTERVAL=200ms"}})
		schedulesFlow(t, "http://"+f.servers[0].addr, newDestination(t, nil))
		for _, p := range f.all() {
			if out := p.Output(); strings.Contains(out, "CROSSSLOT") {
				t.Errorf("%s logged a CROSSSLOT error:\n%s", p.name, p.Tail(40))
			}
		}
	})
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		base := startDev(t).baseURL(t)
		dest := newDestination(t, nil)
		const sid = "dev-tick"
		apiJSON(t, http.MethodPost, base+"/v1/schedules", schedBody(sid, dest.URL("/dev"), firstStart()), http.StatusCreated, nil)
		first := waitOccurrence(t, dest, sid, 0, 10*time.Second)
		waitOccurrence(t, dest, sid, occMS(sid, first.ID), 5*time.Second)
		checkArrivals(t, dest, sid, true)
	})
}

// schedulesFlow runs the schedule checks against a running API at base
// whose workers deliver to dest.
func schedulesFlow(t *testing.T, base string, dest *destination) {
	started := time.Now()
	const sid = "tick"
	start := firstStart()

	var created scheduleView
	apiJSON(t, http.MethodPost, base+"/v1/schedules", schedBody(sid, dest.URL("/a"), start), http.StatusCreated, &created)
	if created.ID != sid || created.Every != "1s" || created.nextMS(t) != start.UnixMilli() || len(created.LastRuns) != 0 {
		t.Fatalf("created %+v, want next_at %s and no runs", created, start.Format(time.RFC3339Nano))
	}
	apiJSON(t, http.MethodPost, base+"/v1/schedules", schedBody(sid, dest.URL("/a"), start), http.StatusOK, nil)
	if code, b := apiDo(t, http.MethodPost, base+"/v1/schedules", schedBody(sid, dest.URL("/other"), start)); code != http.StatusConflict {
		t.Errorf("a differing create: %d %s, want 409", code, b)
	}
	var list struct {
		Schedules []scheduleView `json:"schedules"`
	}
	apiJSON(t, http.MethodGet, base+"/v1/schedules?"+query("app", testApp), nil, http.StatusOK, &list)
	if len(list.Schedules) != 1 || list.Schedules[0].ID != sid {
		t.Errorf("list: %+v, want %s", list.Schedules, sid)
	}

	// Three occurrences, from start_at on.
	var a arrival
	for i := range 3 {
		a = waitOccurrence(t, dest, sid, occMS(sid, a.ID), 10*time.Second)
		if i == 0 && occMS(sid, a.ID) != start.UnixMilli() {
			t.Errorf("first occurrence %s, want %s@%d", a.ID, sid, start.UnixMilli())
		}
		if a.Path != "/a" || a.Method != http.MethodPost || !strings.Contains(string(a.Body), `"tick"`) {
			t.Errorf("%s: %s %s %s", a.ID, a.Method, a.Path, a.Body)
		}
	}
	t.Logf("3 occurrences arrived %s after the create", time.Since(started))

	// last_runs: newest first, each with its status; next_at after them.
	var s scheduleView
	waitFor(t, 10*time.Second, func() string {
		s = getSchedule(t, base, sid)
		n := len(s.LastRuns)
		if n < 3 || s.LastRuns[n-1].Status == nil || *s.LastRuns[n-1].Status != "COMPLETED" {
			return fmt.Sprintf("last_runs %+v, want 3 or more, the oldest COMPLETED", s.LastRuns)
		}
		return ""
	})
	for i, r := range s.LastRuns {
		ms := occMS(sid, r.EventID)
		if !onGrid(ms) || r.Status == nil || i > 0 && ms >= occMS(sid, s.LastRuns[i-1].EventID) {
			t.Errorf("last_runs[%d] = %+v (of %+v): want an occurrence with a status, newest first", i, r, s.LastRuns)
		}
	}
	if next := s.nextMS(t); !onGrid(next) || next <= occMS(sid, s.LastRuns[0].EventID) {
		t.Errorf("next_at %v, want an occurrence after the last run %s", s.NextAt, s.LastRuns[0].EventID)
	}

	// Paused: its pending occurrence is cancelled, nothing arrives.
	head := justAfterOccurrence(t, base, dest, sid).nextMS(t)
	var paused scheduleView
	apiJSON(t, http.MethodPost, base+"/v1/schedules/"+testApp+"/"+sid+"/pause", nil, http.StatusOK, &paused)
	pausedAt := time.Now()
	if !paused.Paused || paused.NextAt != nil {
		t.Errorf("paused: %+v, want paused with next_at null", paused)
	}
	time.Sleep(2500 * time.Millisecond)
	for _, a := range dest.all() {
		if occMS(sid, a.ID) > pausedAt.UnixMilli() || a.At.After(pausedAt.Add(time.Second)) {
			t.Errorf("%s arrived %s after the pause", a.ID, a.At.Sub(pausedAt))
		}
	}
	if ev := getEvent(t, base, testApp, fmt.Sprintf("%s@%d", sid, head)); ev.Status != "CANCELLED" {
		t.Errorf("the paused schedule's pending occurrence %s is %s, want CANCELLED", ev.ID, ev.Status)
	}

	// Resumed: from the next future occurrence; none made up for the pause.
	resumeAt := time.Now()
	var resumed scheduleView
	apiJSON(t, http.MethodPost, base+"/v1/schedules/"+testApp+"/"+sid+"/resume", nil, http.StatusOK, &resumed)
	if next := resumed.nextMS(t); resumed.Paused || !onGrid(next) || next <= resumeAt.UnixMilli() {
		t.Errorf("resumed: %+v, want next_at an occurrence after %s", resumed, resumeAt.Format(time.RFC3339Nano))
	}
	a = waitOccurrence(t, dest, sid, pausedAt.UnixMilli(), 5*time.Second)
	if ms := occMS(sid, a.ID); ms < resumeAt.UnixMilli() {
		t.Errorf("after the resume %s arrived: an occurrence of the paused time", a.ID)
	}

	// Triggered: one extra occurrence now, next_at unchanged.
	before := justAfterOccurrence(t, base, dest, sid)
	trigAt := time.Now()
	var trig scheduleView
	apiJSON(t, http.MethodPost, base+"/v1/schedules/"+testApp+"/"+sid+"/trigger", nil, http.StatusOK, &trig)
	if n := before.nextMS(t); trig.nextMS(t) != n && !slices.ContainsFunc(trig.LastRuns, func(r runView) bool { return occMS(sid, r.EventID) == n }) {
		// (Unless that occurrence ran in between, on a slow machine.)
		t.Errorf("trigger moved next_at from %v to %v", before.NextAt, trig.NextAt)
	}
	if len(trig.LastRuns) == 0 {
		t.Fatalf("trigger: no run in %+v", trig)
	}
	trigID := trig.LastRuns[0].EventID
	if ms := occMS(sid, trigID); ms < trigAt.UnixMilli()-1000 || ms > time.Now().UnixMilli() {
		t.Fatalf("the trigger's run is %s, want %s@<now ms>", trigID, sid)
	}
	if onGrid(occMS(sid, trigID)) {
		t.Logf("the trigger fell on an occurrence's millisecond (%s): it is that occurrence", trigID)
	} else {
		dest.waitArrivals(t, trigID, 1, 5*time.Second)
		if ev := getEvent(t, base, testApp, trigID); ev.Status != "COMPLETED" && ev.Status != "PROCESSING" {
			t.Errorf("triggered event %+v", ev)
		}
	}

	// Replaced with another url: the next occurrences go there.
	justAfterOccurrence(t, base, dest, sid)
	apiJSON(t, http.MethodPut, base+"/v1/schedules/"+testApp+"/"+sid, schedBody(sid, dest.URL("/b"), start), http.StatusOK, nil)
	putAt := time.Now()
	for range 2 {
		a = waitOccurrence(t, dest, sid, max(occMS(sid, a.ID), putAt.UnixMilli()), 5*time.Second)
	}
	for _, a := range chainArrivals(dest, sid) {
		if occMS(sid, a.ID) > putAt.UnixMilli() && a.Path != "/b" {
			t.Errorf("%s, due after the replace, went to %s, want /b", a.ID, a.Path)
		}
	}

	// Deleted: its pending occurrence is cancelled, nothing more arrives.
	justAfterOccurrence(t, base, dest, sid)
	var gone scheduleView
	apiJSON(t, http.MethodDelete, base+"/v1/schedules/"+testApp+"/"+sid, nil, http.StatusOK, &gone)
	deletedAt := time.Now()
	if next := gone.nextMS(t); next <= deletedAt.UnixMilli() {
		t.Logf("the deleted schedule's next_at %v had passed by the delete", gone.NextAt)
	} else if ev := getEvent(t, base, testApp, fmt.Sprintf("%s@%d", sid, next)); ev.Status != "CANCELLED" {
		t.Errorf("the deleted schedule's pending occurrence is %s, want CANCELLED", ev.Status)
	}
	if code, b := apiDo(t, http.MethodGet, base+"/v1/schedules/"+testApp+"/"+sid, nil); code != http.StatusNotFound {
		t.Errorf("GET after delete: %d %s, want 404", code, b)
	}
	time.Sleep(2500 * time.Millisecond)
	for _, a := range dest.all() {
		if occMS(sid, a.ID) > deletedAt.UnixMilli() || a.At.After(deletedAt.Add(time.Second)) {
			t.Errorf("%s arrived %s after the delete", a.ID, a.At.Sub(deletedAt))
		}
	}
	checkArrivals(t, dest, sid, true)
	t.Logf("flow took %s, %d arrivals", time.Since(started), len(dest.all()))
}

// TestScheduleChainSurvivesAKilledWorker kills -9 one of three worker
// processes while it delivers an occurrence and starts another later: the
// chain neither breaks nor forks. Every occurrence from the first to the
// last is exactly one event, COMPLETED; only the killed one's request may
// arrive twice (at-least-once), after its lease expired.
func TestScheduleChainSurvivesAKilledWorker(t *testing.T) {
	t.Parallel()
	const sid = "tick"
	var slow atomic.Bool
	held := make(chan string, 1)
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if slow.CompareAndSwap(true, false) {
			held <- a.ID
			// Until the worker is killed (its connection drops), at most 10s.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
		ok(w, r, a)
	})
	workerEnv := []string{"CASSATA_VISIBILITY_TIMEOUT=2s"}
	base, workers, archive := topicProcs(t, e, 3, workerEnv...)
	byID := map[string]*cassataProcess{}
	for _, w := range workers {
		byID[w.workerID(t)] = w
	}
	start := firstStart()
	apiJSON(t, http.MethodPost, base+"/v1/schedules", schedBody(sid, e.dest.URL("/tick"), start), http.StatusCreated, nil)
	first := waitOccurrence(t, e.dest, sid, 0, 10*time.Second)
	waitOccurrence(t, e.dest, sid, occMS(sid, first.ID), 5*time.Second)

	slow.Store(true)
	var heldID string
	select {
	case heldID = <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("no occurrence arrived to hold")
	}
	ev := e.get(heldID)
	victim := byID[ev.Worker]
	if ev.Status != scheduler.StatusProcessing || victim == nil {
		t.Fatalf("held %s is %s by worker %q, want PROCESSING by one of %v", heldID, ev.Status, ev.Worker, byID)
	}
	// Killed once it chained the next occurrence (Advance runs while the
	// request is out): killed before, its occurrence would run again after
	// the lease and the chain resume from then on, a catch-up, not a gap
	// this test could tell from a broken chain.
	waitFor(t, 5*time.Second, func() string {
		if n := getSchedule(t, base, sid).nextMS(t); n <= occMS(sid, heldID) {
			return fmt.Sprintf("next_at %d, not past the held %s yet", n, heldID)
		}
		return ""
	})
	victim.Kill()
	killedAt := time.Now()
	t.Logf("killed worker %s holding %s", ev.Worker, heldID)

	// The others keep the chain going; then a worker comes back.
	waitOccurrence(t, e.dest, sid, occMS(sid, heldID)+5000, 10*time.Second)
	startCassata(t, e, "worker", append([]string{archive}, workerEnv...)...).workerID(t)
	last := waitOccurrence(t, e.dest, sid, time.Now().UnixMilli()+2000, 10*time.Second)
	apiJSON(t, http.MethodPost, base+"/v1/schedules/"+testApp+"/"+sid+"/pause", nil, http.StatusOK, nil)
	lastMS := occMS(sid, last.ID)
	t.Logf("paused %s after the kill, at %s", time.Since(killedAt), last.ID)

	// One event per occurrence time, COMPLETED, from the first to the last.
	var found []eventView
	waitFor(t, 20*time.Second, func() string {
		found = searchEvents(t, base, "app", testApp, "q", sid+"@")
		done := 0
		for _, ev := range found {
			if ms := occMS(sid, ev.ID); ms <= lastMS && ev.Status == "COMPLETED" {
				done++
			}
		}
		if want := int((lastMS-start.UnixMilli())/1000) + 1; done < want {
			return fmt.Sprintf("%d occurrences up to %s COMPLETED, want %d", done, last.ID, want)
		}
		return ""
	})
	seen := map[int64]bool{}
	for _, ev := range found {
		ms := occMS(sid, ev.ID)
		if !onGrid(ms) {
			t.Errorf("event %s is not an occurrence of the schedule", ev.ID)
		}
		if seen[ms] {
			t.Errorf("event %s listed twice", ev.ID)
		}
		seen[ms] = true
		switch {
		case ms <= lastMS && ev.Status != "COMPLETED":
			t.Errorf("occurrence %s is %s, want COMPLETED", ev.ID, ev.Status)
		case ms > lastMS && ev.Status != "CANCELLED" && ev.Status != "COMPLETED":
			t.Errorf("occurrence %s after the pause is %s", ev.ID, ev.Status)
		}
	}
	for ms := start.UnixMilli(); ms <= lastMS; ms += 1000 {
		if !seen[ms] {
			t.Errorf("no event for the occurrence at %d: the chain broke", ms)
		}
		if n := len(e.dest.of(fmt.Sprintf("%s@%d", sid, ms))); n == 0 {
			t.Errorf("the occurrence at %d never arrived", ms)
		}
	}
	if n := int((lastMS - start.UnixMilli()) / 1000); n < 8 {
		t.Errorf("only %d occurrences ran", n+1)
	}
	heldEv := getEvent(t, base, testApp, heldID)
	if len(e.dest.of(heldID)) > 1 && !heldEv.leaseExpired() {
		t.Errorf("%s arrived %d times but shows no lease-expired attempt: %+v", heldID, len(e.dest.of(heldID)), heldEv)
	}
	t.Logf("the held %s arrived %d times, attempts %d, lease expired %v",
		heldID, len(e.dest.of(heldID)), heldEv.Attempts, heldEv.leaseExpired())
	byArrival := e.dest.byID()
	for id, as := range byArrival {
		if len(as) > 1 && id != heldID {
			t.Errorf("%s arrived %d times; only the killed worker's may repeat", id, len(as))
		}
	}
	checkArrivals(t, e.dest, sid, false)
}

// TestScheduleCatchUp stops the only worker for about five occurrences and
// starts another: the pending occurrence is delivered once, late, and the
// chain resumes at the next future occurrence, without the missed ones.
func TestScheduleCatchUp(t *testing.T) {
	t.Parallel()
	const sid = "tick"
	e := setup(t, nil)
	base, workers, archive := topicProcs(t, e, 1)
	start := firstStart()
	apiJSON(t, http.MethodPost, base+"/v1/schedules", schedBody(sid, e.dest.URL("/tick"), start), http.StatusCreated, nil)
	a := waitOccurrence(t, e.dest, sid, 0, 10*time.Second)
	a = waitOccurrence(t, e.dest, sid, occMS(sid, a.ID), 5*time.Second)
	workers[0].Stop()
	stopped := time.Now()
	before := len(chainArrivals(e.dest, sid))
	head := getSchedule(t, base, sid).nextMS(t)
	time.Sleep(5 * time.Second)

	restarted := time.Now()
	if got := chainArrivals(e.dest, sid); len(got) > 0 {
		a = got[len(got)-1] // one sent while the worker shut down
	}
	startCassata(t, e, "worker", archive).workerID(t)
	late := waitOccurrence(t, e.dest, sid, occMS(sid, a.ID), 10*time.Second)
	if ms := occMS(sid, late.ID); ms != head || ms > restarted.UnixMilli() {
		t.Errorf("first arrival after the restart is %s, want the pending occurrence %s@%d", late.ID, sid, head)
	}
	next := waitOccurrence(t, e.dest, sid, occMS(sid, late.ID), 5*time.Second)
	waitOccurrence(t, e.dest, sid, occMS(sid, next.ID), 5*time.Second)
	t.Logf("stopped %s, late %s arrived %s after the restart, then %s",
		restarted.Sub(stopped), late.ID, late.At.Sub(restarted), next.ID)
	if ms := occMS(sid, next.ID); ms < late.At.UnixMilli()-1500 || ms > late.At.UnixMilli()+2000 {
		t.Errorf("after the late %s (arrived at %d) came %s, want the next future occurrence", late.ID, late.At.UnixMilli(), next.ID)
	}
	// No missed occurrence was made, let alone sent.
	for ms := head + 1000; ms < occMS(sid, next.ID); ms += 1000 {
		if code, _ := apiDo(t, http.MethodGet, base+"/v1/events/"+testApp+"/"+fmt.Sprintf("%s@%d", sid, ms), nil); code != http.StatusNotFound {
			t.Errorf("missed occurrence %s@%d: %d, want 404 (never made)", sid, ms, code)
		}
	}
	var after []int64
	for _, a := range chainArrivals(e.dest, sid)[before:] {
		after = append(after, occMS(sid, a.ID))
	}
	if !slices.IsSorted(after) {
		t.Errorf("arrivals after the stop out of order: %v", after)
	}
	for i := 2; i < len(after); i++ {
		if after[i] != after[i-1]+1000 {
			t.Errorf("arrivals after the catch-up %v: want one a second", after)
			break
		}
	}
	checkArrivals(t, e.dest, sid, true)
}

// TestSchedulePauseResumeWithinAnInterval: paused and resumed before its
// next occurrence, a schedule resumes at that same occurrence (its event
// was cancelled by the pause) and goes on.
func TestSchedulePauseResumeWithinAnInterval(t *testing.T) {
	t.Parallel()
	const sid = "slow"
	e := setup(t, nil)
	base, _, _ := topicProcs(t, e, 1)
	body := schedBody(sid, e.dest.URL("/slow"), firstStart().Add(time.Second))
	body["every"] = "3s"
	var created, resumed scheduleView
	apiJSON(t, http.MethodPost, base+"/v1/schedules", body, http.StatusCreated, &created)
	apiJSON(t, http.MethodPost, base+"/v1/schedules/"+testApp+"/"+sid+"/pause", nil, http.StatusOK, nil)
	apiJSON(t, http.MethodPost, base+"/v1/schedules/"+testApp+"/"+sid+"/resume", nil, http.StatusOK, &resumed)
	next := created.nextMS(t)
	if resumed.nextMS(t) != next {
		t.Fatalf("resumed next_at %v, want the same occurrence %v", resumed.NextAt, created.NextAt)
	}
	e.dest.waitArrivals(t, fmt.Sprintf("%s@%d", sid, next), 1, 10*time.Second)
	e.dest.waitArrivals(t, fmt.Sprintf("%s@%d", sid, next+3000), 1, 10*time.Second)
	checkArrivals(t, e.dest, sid, true)
}
