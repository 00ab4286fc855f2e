package redisstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

const testFlow = "hooks.example"

var testFlowID = flow.ID{App: testApp, Key: testFlow}

func (b *bundle) putFlow(t *testing.T, l flow.Limits) {
	t.Helper()
	if _, err := b.store.PutFlow(context.Background(), testApp, testFlow, l); err != nil {
		t.Fatalf("PutFlow: %v", err)
	}
}

// acquire asks testFlow for a permit for each id (due b.now) at now.
func (b *bundle) acquire(t *testing.T, now time.Time, ids ...string) []flow.Answer {
	t.Helper()
	reqs := make([]flow.Acquire, len(ids))
	for i, id := range ids {
		reqs[i] = flow.Acquire{ID: testFlowID, EventID: id, Due: b.now}
	}
	out := b.store.AcquireFlows(context.Background(), reqs, visibility, now)
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("acquire %s: %v", ids[i], a.Err)
		}
	}
	return out
}

func verdicts(as []flow.Answer) []flow.Verdict {
	out := make([]flow.Verdict, len(as))
	for i, a := range as {
		out[i] = a.Verdict
	}
	return out
}

func (b *bundle) pump(t *testing.T, now time.Time, release string) flow.Pumped {
	t.Helper()
	res := b.store.PumpFlows(context.Background(), []flow.Pump{{ID: testFlowID, Release: release}}, now)
	if res[0].Err != nil {
		t.Fatalf("pump: %v", res[0].Err)
	}
	return res[0]
}

func (b *bundle) flowState(t *testing.T) *flow.State {
	t.Helper()
	st, err := b.store.ReadFlow(context.Background(), testApp, testFlow)
	if err != nil {
		t.Fatalf("ReadFlow: %v", err)
	}
	return st
}

func TestFlowUnknownKeyHasNoLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := verdicts(b.acquire(t, b.now, "a", "b", "c"))
	for i, v := range got {
		if v != flow.Unlimited {
			t.Errorf("event %d: verdict %v, want Unlimited", i, v)
		}
	}
	if _, err := b.store.ReadFlow(context.Background(), testApp, testFlow); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("ReadFlow of an unknown key = %v, want ErrNotFound", err)
	}
	// A record with no limit (paused only, or nothing) limits nothing either.
	b.putFlow(t, flow.Limits{})
	if v := verdicts(b.acquire(t, b.now, "d")); v[0] != flow.Unlimited {
		t.Errorf("key without limits: verdict %v, want Unlimited", v[0])
	}
}

// A held event parks without an attempt; a released permit goes to it, and
// it comes back due at its place and finds its permit when claimed.
func TestFlowParallelismHoldsAndReleases(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.putFlow(t, flow.Limits{Parallelism: 2})
	for _, id := range []string{"e1", "e2", "e3"} {
		b.create(t, newEvent(id, b.now, b.now))
	}
	c := b.claim(t, testWorker, 10, b.now)
	if len(c.Events) != 3 {
		t.Fatalf("claimed %d, want 3", len(c.Events))
	}
	got := b.acquire(t, b.now, "e1", "e2", "e3")
	if v := verdicts(got); v[0] != flow.Granted || v[1] != flow.Granted || v[2] != flow.Held {
		t.Fatalf("verdicts %v, want Granted Granted Held", v)
	}
	if got[2].Wake.IsZero() {
		t.Error("a held event's answer has no wake time (the earliest permit deadline)")
	}
	if st := b.flowState(t); st.InFlight != 2 || st.Held != 1 || st.Parallelism != 2 {
		t.Errorf("state %+v, want 2 in flight, 1 held, parallelism 2", st)
	}

	lease := scheduler.Lease{App: testApp, ID: "e3", Worker: testWorker, Attempt: 1}
	ok, err := b.store.Park(ctx, lease, b.at(2*time.Minute), b.now)
	if err != nil || !ok {
		t.Fatalf("Park = %v, %v", ok, err)
	}
	ev := b.get(t, "e3")
	if ev.Status != scheduler.StatusPending || ev.Attempts != 0 {
		t.Errorf("parked event: status %s attempts %d, want PENDING 0", ev.Status, ev.Attempts)
	}
	if c := b.claim(t, testWorker, 10, b.at(time.Second)); len(c.Events) != 0 {
		t.Errorf("a parked event was claimed before a permit freed: %v", ids(c.Events))
	}
	if ok, _ := b.store.Park(ctx, lease, b.at(2*time.Minute), b.now); ok {
		t.Error("parking again without the claim succeeded")
	}

	// e1's delivery is over: its permit goes to e3, which is due again.
	p := b.pump(t, b.at(time.Second), "e1")
	if p.Granted != 1 {
		t.Fatalf("pump granted %d, want 1", p.Granted)
	}
	c = b.claim(t, testWorker, 10, b.at(time.Second))
	if len(c.Events) != 1 || c.Events[0].ID != "e3" || c.Events[0].Attempts != 1 {
		t.Fatalf("after the release claimed %v, want e3 at attempt 1", ids(c.Events))
	}
	if v := verdicts(b.acquire(t, b.at(time.Second), "e3")); v[0] != flow.Granted {
		t.Errorf("e3 claimed with its granted permit: verdict %v, want Granted", v[0])
	}
	if st := b.flowState(t); st.InFlight != 2 || st.Held != 0 {
		t.Errorf("state %+v, want 2 in flight (e2, e3), none held", st)
	}
}

// Older events go first: of those asking together the oldest, and a held
// one before a newer one that asks when a permit is free.
func TestFlowKeepsDueOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putFlow(t, flow.Limits{Parallelism: 1})
	ctx := context.Background()
	b.create(t, newEvent("old", b.now, b.now)) // exists: its grant is kept
	req := func(id string, due time.Time) flow.Acquire {
		return flow.Acquire{ID: testFlowID, EventID: id, Due: due}
	}
	ans := b.store.AcquireFlows(ctx, []flow.Acquire{req("old", b.now), req("older", b.at(-time.Second))}, visibility, b.now)
	if ans[0].Verdict != flow.Held || ans[1].Verdict != flow.Granted {
		t.Fatalf("verdicts old %v, older %v; want Held, Granted", ans[0].Verdict, ans[1].Verdict)
	}
	// "older" is done; before "old" is claimed a newer event asks: the
	// permit went to "old", so the newer one waits.
	if p := b.pump(t, b.now, "older"); p.Granted != 1 {
		t.Fatalf("pump granted %d, want 1", p.Granted)
	}
	ans = b.store.AcquireFlows(ctx, []flow.Acquire{req("new", b.at(time.Second))}, visibility, b.at(time.Second))
	if ans[0].Verdict != flow.Held {
		t.Errorf("a newer event overtook a held older one: verdict %v", ans[0].Verdict)
	}
	if ans = b.store.AcquireFlows(ctx, []flow.Acquire{req("old", b.now)}, visibility, b.at(time.Second)); ans[0].Verdict != flow.Granted {
		t.Errorf("the held event granted a permit: verdict %v on its claim", ans[0].Verdict)
	}
}

// The rate spreads starts 1000/rate ms apart and says when the next slot is.
func TestFlowRateSpreadsStarts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putFlow(t, flow.Limits{Rate: 5})
	ans := b.acquire(t, b.now, "r1", "r2")
	if ans[0].Verdict != flow.Granted || ans[1].Verdict != flow.Held {
		t.Fatalf("verdicts %v, want Granted Held", verdicts(ans))
	}
	if want := b.at(200 * time.Millisecond); !ans[1].Wake.Equal(want) {
		t.Errorf("held until %v, want the next slot %v", ans[1].Wake, want)
	}
	if p := b.pump(t, b.at(199*time.Millisecond), ""); p.Granted != 0 || !p.Wake.Equal(b.at(200*time.Millisecond)) {
		t.Errorf("pump before the slot: granted %d wake %v; want 0 and the slot", p.Granted, p.Wake)
	}
	if p := b.pump(t, b.at(200*time.Millisecond), ""); p.Granted != 1 {
		// r2 is not an event: its unpark finds it gone and releases the permit.
		t.Errorf("pump at the slot granted %d, want 1", p.Granted)
	}
	// The next slot is 200 ms after the last grant.
	if a := b.acquire(t, b.at(300*time.Millisecond), "r3"); a[0].Verdict != flow.Held || !a[0].Wake.Equal(b.at(400*time.Millisecond)) {
		t.Errorf("r3: %v wake %v, want Held until +400ms", a[0].Verdict, a[0].Wake)
	}
}

// A permit not released nor extended ends at its deadline: a dead worker
// does not leak it.
func TestFlowPermitExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putFlow(t, flow.Limits{Parallelism: 1})
	if v := verdicts(b.acquire(t, b.now, "dead")); v[0] != flow.Granted {
		t.Fatalf("verdict %v", v[0])
	}
	if v := verdicts(b.acquire(t, b.at(visibility-time.Millisecond), "next")); v[0] != flow.Held {
		t.Fatalf("before the deadline: verdict %v, want Held", v[0])
	}
	if v := verdicts(b.acquire(t, b.at(visibility), "next")); v[0] != flow.Granted {
		t.Errorf("at the deadline: verdict %v, want Granted", v[0])
	}
	// Extending keeps a permit past its first deadline.
	b2 := setup(t)
	b2.putFlow(t, flow.Limits{Parallelism: 1})
	b2.acquire(t, b2.now, "slow")
	if err := b2.store.ExtendFlow(context.Background(), testFlowID, "slow", time.Hour, b2.now); err != nil {
		t.Fatal(err)
	}
	if v := verdicts(b2.acquire(t, b2.at(visibility), "other")); v[0] != flow.Held {
		t.Errorf("an extended permit ended at its first deadline: verdict %v", v[0])
	}
	if v := verdicts(b2.acquire(t, b2.at(time.Hour), "other")); v[0] != flow.Granted {
		t.Errorf("an extended permit outlived its new deadline: verdict %v", v[0])
	}
	// A released permit is not brought back by a late extend.
	b3 := setup(t)
	b3.putFlow(t, flow.Limits{Parallelism: 1})
	if err := b3.store.ExtendFlow(context.Background(), testFlowID, "never", time.Hour, b3.now); err != nil {
		t.Fatal(err)
	}
	if v := verdicts(b3.acquire(t, b3.now, "first")); v[0] != flow.Granted {
		t.Errorf("an extend of a permit never held took the key's only slot: verdict %v", v[0])
	}
}

func TestAppPauseParksAndResumesInDueOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.create(t, newEvent("late", b.at(-time.Second), b.now))
	b.create(t, newEvent("early", b.at(-2*time.Second), b.now))
	b.create(t, newEvent("gone", b.at(-3*time.Second), b.now))
	other := newEvent("other-app", b.now, b.now)
	other.App = "other"
	b.create(t, other)
	p, err := b.store.SetAppPaused(ctx, testApp, true)
	if err != nil || !p.Paused {
		t.Fatalf("pause = %+v, %v", p, err)
	}
	c := b.claim(t, testWorker, 10, b.now)
	if len(c.Events) != 1 || c.Events[0].App != "other" {
		t.Fatalf("claimed %v while the app was paused; want only the other app's event", ids(c.Events))
	}
	if p, _ := b.store.AppPaused(ctx, testApp); !p.Paused || p.Held != 3 {
		t.Errorf("pause state %+v, want paused with 3 held", p)
	}
	for _, id := range []string{"late", "early"} {
		if ev := b.get(t, id); ev.Status != scheduler.StatusPending || ev.Attempts != 0 {
			t.Errorf("%s while paused: %s attempts %d, want PENDING 0", id, ev.Status, ev.Attempts)
		}
	}
	if _, err := b.store.Cancel(ctx, testApp, "gone", b.now); err != nil {
		t.Fatalf("cancel a held event: %v", err)
	}
	if apps, _ := b.store.PausedApps(ctx); len(apps) != 1 || apps[0].App != testApp {
		t.Errorf("paused apps %+v", apps)
	}

	if p, err := b.store.SetAppPaused(ctx, testApp, false); err != nil || p.Paused || p.Held != 0 {
		t.Fatalf("resume = %+v, %v", p, err)
	}
	// Each parked event is due again at its own time: a claim between the
	// two due times takes only the earlier one.
	c = b.claim(t, testWorker, 10, b.at(-1500*time.Millisecond))
	if got := ids(c.Events); len(got) != 1 || got[0] != "early" {
		t.Errorf("after resume, 1.5 s before now, claimed %v, want [early] (parked at its due time)", got)
	}
	c = b.claim(t, testWorker, 10, b.now)
	if got := ids(c.Events); len(got) != 1 || got[0] != "late" {
		t.Errorf("after resume claimed %v, want [late] (the cancelled one not at all)", got)
	}
}

func TestFlowPauseParksTheKeysEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.putFlow(t, flow.Limits{Paused: true, Parallelism: 5})
	keyed := newEvent("keyed", b.now, b.now)
	keyed.FlowKey = testFlow
	b.create(t, keyed)
	otherKey := newEvent("other-key", b.now, b.now)
	otherKey.FlowKey = "other"
	b.create(t, otherKey)
	b.create(t, newEvent("no-key", b.now, b.now))
	c := b.claim(t, testWorker, 10, b.now)
	if got := ids(c.Events); len(got) != 2 || slices.Contains(got, "keyed") {
		t.Fatalf("claimed %v while the key was paused; want the two others", got)
	}
	if st := b.flowState(t); !st.Paused || st.Held != 1 || st.Parallelism != 5 {
		t.Errorf("state %+v, want paused, 1 held, parallelism 5", st)
	}
	if ev := b.get(t, "keyed"); ev.Status != scheduler.StatusPending || ev.Attempts != 0 {
		t.Errorf("held event: %s attempts %d", ev.Status, ev.Attempts)
	}
	if _, err := b.store.PutFlow(ctx, testApp, testFlow, flow.Limits{Parallelism: 5}); err != nil {
		t.Fatal(err)
	}
	c = b.claim(t, testWorker, 10, b.now)
	if got := ids(c.Events); len(got) != 1 || got[0] != "keyed" {
		t.Errorf("after resume claimed %v, want [keyed]", got)
	}
}

func TestDeleteFlowLetsHeldEventsGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.putFlow(t, flow.Limits{Parallelism: 1})
	b.create(t, newEvent("e1", b.now, b.now))
	b.create(t, newEvent("e2", b.now, b.now))
	b.claim(t, testWorker, 10, b.now)
	if v := verdicts(b.acquire(t, b.now, "e1", "e2")); v[0] != flow.Granted || v[1] != flow.Held {
		t.Fatalf("verdicts %v", v)
	}
	if ok, err := b.store.Park(ctx, scheduler.Lease{App: testApp, ID: "e2", Worker: testWorker, Attempt: 1}, b.at(time.Hour), b.now); !ok || err != nil {
		t.Fatalf("park: %v %v", ok, err)
	}
	st, err := b.store.DeleteFlow(ctx, testApp, testFlow)
	if err != nil || st.Parallelism != 1 || st.Held != 1 {
		t.Fatalf("delete = %+v, %v; want the state it had", st, err)
	}
	if c := b.claim(t, testWorker, 10, b.now); len(c.Events) != 1 || c.Events[0].ID != "e2" {
		t.Errorf("after delete claimed %v, want the held e2", ids(c.Events))
	}
	if _, err := b.store.ReadFlow(ctx, testApp, testFlow); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("read after delete: %v", err)
	}
	if _, err := b.store.DeleteFlow(ctx, testApp, testFlow); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if ids, _ := b.store.FlowIDs(ctx); len(ids) != 0 {
		t.Errorf("flow ids after delete: %v", ids)
	}
}

// Raising or removing a key's limits lets its held events go at once.
func TestPutFlowLetsHeldEventsGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// PutFlow pumps on the server's clock: permits must not look expired.
	b.now = time.Now().Truncate(time.Millisecond)
	ctx := context.Background()
	b.putFlow(t, flow.Limits{Parallelism: 1})
	for _, id := range []string{"e1", "e2", "e3", "e4"} {
		b.create(t, newEvent(id, b.now, b.now))
	}
	b.claim(t, testWorker, 10, b.now)
	if v := verdicts(b.acquire(t, b.now, "e1", "e2", "e3", "e4")); v[0] != flow.Granted || v[3] != flow.Held {
		t.Fatalf("verdicts %v", v)
	}
	for _, id := range []string{"e2", "e3", "e4"} {
		if ok, err := b.store.Park(ctx, scheduler.Lease{App: testApp, ID: id, Worker: testWorker, Attempt: 1}, b.at(time.Hour), b.now); !ok || err != nil {
			t.Fatalf("park %s: %v %v", id, ok, err)
		}
	}
	st, err := b.store.PutFlow(ctx, testApp, testFlow, flow.Limits{Parallelism: 3})
	if err != nil || st.Held != 1 || st.InFlight != 3 {
		t.Fatalf("raised to 3: %+v %v; want 3 permits out (e1 and two granted), 1 held", st, err)
	}
	if c := b.claim(t, testWorker, 10, b.now); len(c.Events) != 2 {
		t.Errorf("claimed %v after raising the limit, want two of the held", ids(c.Events))
	}
	if st, err = b.store.PutFlow(ctx, testApp, testFlow, flow.Limits{}); err != nil || st.Held != 0 {
		t.Fatalf("limits removed: %+v %v; want none held", st, err)
	}
	if c := b.claim(t, testWorker, 10, b.now); len(c.Events) != 1 {
		t.Errorf("claimed %v after removing the limit, want the last held one", ids(c.Events))
	}
}
