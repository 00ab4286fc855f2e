package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/store/redisstore"
)

const app = "shop"

// t0 is the test clock's start, on a whole 10 seconds.
var t0 = time.UnixMilli(1_700_000_000_000).UTC()

// bundle is a Schedules over a one-shard store on miniredis and a manual clock.
type bundle struct {
	s     *schedule.Schedules
	store *redisstore.Store
	mr    *miniredis.Miniredis
	clock *scheduler.ManualClock
}

func setup(t *testing.T) *bundle {
	t.Helper()
	st, mr := storetest.Miniredis(t, redisstore.Config{Namespace: "t", Shards: 1})
	clock := scheduler.NewManualClock(t0)
	return &bundle{s: schedule.New(st, st, schedule.Config{Clock: clock, Events: scheduler.New(st, scheduler.Config{Clock: clock})}), store: st, mr: mr, clock: clock}
}

// every10 is a schedule every 10s from t0+10s.
func every10(id string) *schedule.Schedule {
	return &schedule.Schedule{App: app, ID: id, Every: "10s", StartAt: t0.Add(10 * time.Second),
		URL: "https://example.com/" + id, Method: "POST", Headers: map[string]string{"X-A": "1"}, Body: []byte("hi")}
}

// pending lists the events waiting in the due set: the chain's heads and triggers.
func (b *bundle) pending(t *testing.T) []string {
	t.Helper()
	if !b.mr.Exists("t:{t:0}:due") {
		return nil
	}
	m, err := b.mr.ZMembers("t:{t:0}:due")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func (b *bundle) event(t *testing.T, id string) *scheduler.Event {
	t.Helper()
	ev, err := b.store.Get(context.Background(), app, id)
	if err != nil {
		t.Fatalf("event %s: %v", id, err)
	}
	return ev
}

func (b *bundle) get(t *testing.T, id string) *schedule.State {
	t.Helper()
	st, err := b.s.Get(context.Background(), app, id)
	if err != nil {
		t.Fatalf("schedule %s: %v", id, err)
	}
	return st
}

func occ(id string, at time.Time) string { return schedule.OccurrenceID(id, at) }

func member(id string) string { return app + "/" + id }

// checkHead asserts that the schedule's head is at and that its event is a
// PENDING occurrence due then, built from the schedule's template.
func (b *bundle) checkHead(t *testing.T, st *schedule.State, at time.Time) {
	t.Helper()
	if !st.Next.Equal(at) {
		t.Fatalf("next %v, want %v", st.Next, at)
	}
	id := fmt.Sprintf("%s@%d", st.ID, at.UnixMilli())
	ev := b.event(t, id)
	if ev.Kind != scheduler.KindOccurrence || ev.Status != scheduler.StatusPending || !ev.DueAt.Equal(at) ||
		ev.URL != st.URL || ev.Headers[schedule.HeaderScheduleID] != st.ID || ev.Headers["X-A"] != st.Headers["X-A"] ||
		string(ev.Body) != string(st.Body) {
		t.Fatalf("head %s = %+v; want a PENDING occurrence due %v to %s with header %s: %s",
			id, ev, at, st.URL, schedule.HeaderScheduleID, st.ID)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	st, created, err := b.s.Create(ctx, every10("s"))
	if err != nil || !created {
		t.Fatalf("create = %v, %v; want created", created, err)
	}
	b.checkHead(t, st, t0.Add(10*time.Second))
	if !slices.Equal(b.pending(t), []string{member("s@1700000010000")}) {
		t.Fatalf("pending %v, want only the first occurrence", b.pending(t))
	}

	// An identical create, later: a replay, nothing new.
	b.clock.Advance(time.Second)
	again, created, err := b.s.Create(ctx, every10("s"))
	if err != nil || created || again.Rev != st.Rev || !again.Next.Equal(st.Next) {
		t.Fatalf("replay = %+v, %v, %v; want the existing one, not created", again, created, err)
	}
	// A different one under the same id: refused.
	diff := every10("s")
	diff.URL = "https://example.com/other"
	if _, _, err := b.s.Create(ctx, diff); !errors.Is(err, schedule.ErrScheduleExists) || !errors.Is(err, scheduler.ErrDuplicate) {
		t.Fatalf("differing create: %v, want ErrScheduleExists", err)
	}
	if got := b.get(t, "s"); got.URL != "https://example.com/s" || got.Rev != st.Rev {
		t.Errorf("after the refused create: %+v rev %d", got.Schedule, got.Rev)
	}
	if !slices.Equal(b.pending(t), []string{member("s@1700000010000")}) {
		t.Errorf("pending %v, want only the first occurrence", b.pending(t))
	}

	// Without start_at, the first occurrence is one interval after the create.
	sc := every10("nostart")
	sc.StartAt = time.Time{}
	st, _, err = b.s.Create(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	b.checkHead(t, st, b.clock.Now().Add(10*time.Second))

	// Created paused: no occurrence.
	sc = every10("paused")
	sc.Paused = true
	if st, _, err = b.s.Create(ctx, sc); err != nil || !st.Next.IsZero() {
		t.Fatalf("create paused = %+v, %v; want no next", st, err)
	}
	if _, err := b.store.Get(ctx, app, occ("paused", t0.Add(10*time.Second))); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("a paused schedule's occurrence: %v, want none", err)
	}
}

func TestPut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, _, err := b.s.Create(ctx, every10("s"))
	if err != nil {
		t.Fatal(err)
	}
	oldHead := occ("s", first.Next)

	// Moving the start moves the head: the old occurrence is cancelled.
	b.clock.Advance(time.Second)
	sc := every10("s")
	sc.StartAt = t0.Add(20 * time.Second)
	st, err := b.s.Put(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	b.checkHead(t, st, t0.Add(20*time.Second))
	if ev := b.event(t, oldHead); ev.Status != scheduler.StatusCancelled {
		t.Errorf("the old head %s is %s, want CANCELLED", oldHead, ev.Status)
	}
	if !st.CreatedAt.Equal(t0) || st.Rev != first.Rev+1 {
		t.Errorf("replaced: created %v rev %d, want %v and %d", st.CreatedAt, st.Rev, t0, first.Rev+1)
	}

	// Same next time, new template: the pending occurrence is rewritten.
	b.clock.Advance(time.Second)
	sc = every10("s")
	sc.StartAt = t0.Add(20 * time.Second)
	sc.URL = "https://example.com/v2"
	st, err = b.s.Put(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	b.checkHead(t, st, t0.Add(20*time.Second))
	if ev := b.event(t, occ("s", st.Next)); ev.URL != "https://example.com/v2" || !ev.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("rewritten head: url %s created %v, want .../v2 and the first write's %v", ev.URL, ev.CreatedAt, t0.Add(time.Second))
	}
	if got := b.pending(t); !slices.Equal(got, []string{member(occ("s", st.Next))}) {
		t.Errorf("pending %v, want only the rewritten head", got)
	}

	// Put of a schedule that does not exist creates it.
	st, err = b.s.Put(ctx, every10("new"))
	if err != nil || st.Rev != 1 {
		t.Fatalf("put new = %+v, %v", st, err)
	}
	b.checkHead(t, st, t0.Add(10*time.Second))
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	st, _, err := b.s.Create(ctx, every10("s"))
	if err != nil {
		t.Fatal(err)
	}
	head := occ("s", st.Next)
	paused, err := b.s.Pause(ctx, app, "s")
	if err != nil || !paused.Paused || !paused.Next.IsZero() {
		t.Fatalf("pause = %+v, %v; want paused without next", paused, err)
	}
	if ev := b.event(t, head); ev.Status != scheduler.StatusCancelled {
		t.Errorf("head after pause is %s, want CANCELLED", ev.Status)
	}
	if got := b.pending(t); len(got) != 0 {
		t.Errorf("pending while paused: %v", got)
	}
	// Pausing again changes nothing.
	if again, err := b.s.Pause(ctx, app, "s"); err != nil || again.Rev != paused.Rev {
		t.Errorf("second pause = rev %d, %v; want %d", again.Rev, err, paused.Rev)
	}

	// Resumed 45s later: from the next future occurrence, none made up.
	b.clock.Set(t0.Add(45 * time.Second))
	st, err = b.s.Resume(ctx, app, "s")
	if err != nil || st.Paused {
		t.Fatalf("resume = %+v, %v", st, err)
	}
	b.checkHead(t, st, t0.Add(50*time.Second))
	if got := b.pending(t); !slices.Equal(got, []string{member(occ("s", t0.Add(50*time.Second)))}) {
		t.Errorf("pending after resume %v, want only the next future occurrence", got)
	}
}

func TestTriggerAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	created, _, err := b.s.Create(ctx, every10("s"))
	if err != nil {
		t.Fatal(err)
	}
	now := b.clock.Advance(3*time.Second + 7*time.Millisecond)
	st, ev, err := b.s.Trigger(ctx, app, "s")
	if err != nil {
		t.Fatal(err)
	}
	wantID := fmt.Sprintf("s@%d", now.UnixMilli())
	if ev.ID != wantID || ev.Kind != scheduler.KindRequest || !ev.DueAt.Equal(now) {
		t.Errorf("triggered %s kind %q due %v; want %s, a plain request due now", ev.ID, ev.Kind, ev.DueAt, wantID)
	}
	stored := b.event(t, wantID)
	if stored.Kind != scheduler.KindRequest || stored.Headers[schedule.HeaderScheduleID] != "s" || stored.URL != created.URL {
		t.Errorf("triggered event %+v", stored)
	}
	if !st.Next.Equal(created.Next) || !slices.EqualFunc(st.Runs, []time.Time{now}, time.Time.Equal) {
		t.Errorf("after trigger: next %v runs %v; want next %v and runs [%v]", st.Next, st.Runs, created.Next, now)
	}
	runs := b.s.Runs(ctx, b.get(t, "s"))
	if len(runs) != 1 || runs[0].EventID != wantID || runs[0].Status != scheduler.StatusPending {
		t.Errorf("runs %+v, want the trigger PENDING", runs)
	}
	b.checkHead(t, b.get(t, "s"), created.Next)

	gone, err := b.s.Delete(ctx, app, "s")
	if err != nil || gone.ID != "s" {
		t.Fatalf("delete = %+v, %v", gone, err)
	}
	if ev := b.event(t, occ("s", created.Next)); ev.Status != scheduler.StatusCancelled {
		t.Errorf("head after delete is %s, want CANCELLED", ev.Status)
	}
	if _, err := b.s.Get(ctx, app, "s"); !errors.Is(err, schedule.ErrScheduleNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := b.s.Delete(ctx, app, "s"); !errors.Is(err, schedule.ErrScheduleNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// An occurrence of a deleted schedule leads nowhere.
	if v, err := b.s.Advance(ctx, app, occ("s", created.Next)); err != nil || v != schedule.Stale {
		t.Errorf("advance after delete = %v, %v; want stale", v, err)
	}
}

func TestAdvance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	st, _, err := b.s.Create(ctx, every10("s"))
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := t0.Add(10*time.Second), t0.Add(20*time.Second)

	// Claimed at its time: the head moves to the next, which exists.
	b.clock.Set(t1)
	v, err := b.s.Advance(ctx, app, occ("s", t1))
	if err != nil || v != schedule.Advanced {
		t.Fatalf("advance = %v, %v; want advanced", v, err)
	}
	after := b.get(t, "s")
	b.checkHead(t, after, t2)
	if after.Rev != st.Rev+1 || !slices.EqualFunc(after.Runs, []time.Time{t1}, time.Time.Equal) {
		t.Errorf("after advance: rev %d runs %v; want %d [%v]", after.Rev, after.Runs, st.Rev+1, t1)
	}

	// The same occurrence again (a claim repeated after a crash): nothing new.
	before := b.pending(t)
	if v, err := b.s.Advance(ctx, app, occ("s", t1)); err != nil || v != schedule.Again {
		t.Fatalf("advance again = %v, %v; want again", v, err)
	}
	if got := b.get(t, "s"); got.Rev != after.Rev || !got.Next.Equal(t2) {
		t.Errorf("advance again wrote: rev %d next %v", got.Rev, got.Next)
	}
	if got := b.pending(t); !slices.Equal(got, before) {
		t.Errorf("pending %v after advance again, want %v", got, before)
	}

	// Neither head nor a run: stale, nothing written.
	for _, id := range []string{occ("s", t0.Add(30*time.Second)), occ("s", t0.Add(15*time.Second)), occ("other", t2)} {
		if v, err := b.s.Advance(ctx, app, id); err != nil || v != schedule.Stale {
			t.Errorf("advance %s = %v, %v; want stale", id, v, err)
		}
	}
	if got := b.get(t, "s"); got.Rev != after.Rev {
		t.Errorf("a stale advance wrote: rev %d", got.Rev)
	}
	if _, err := b.s.Advance(ctx, app, "not-an-occurrence"); err == nil {
		t.Error("advance of an id without @ms: no error")
	}

	// Claimed long after its time (nothing ran for 53s): one catch-up
	// delivery, and the chain resumes at the next future occurrence.
	b.clock.Set(t2.Add(53 * time.Second))
	if v, err := b.s.Advance(ctx, app, occ("s", t2)); err != nil || v != schedule.Advanced {
		t.Fatalf("late advance = %v, %v", v, err)
	}
	late := b.get(t, "s")
	b.checkHead(t, late, t0.Add(80*time.Second))
	// (Nothing claims here, so t1 and t2 stay in the due set.)
	want := []string{member(occ("s", t1)), member(occ("s", t2)), member(occ("s", t0.Add(80*time.Second)))}
	if got := b.pending(t); !slices.Equal(got, want) {
		t.Errorf("pending after a late advance %v, want %v (no missed occurrence made)", got, want)
	}
	if !slices.EqualFunc(late.Runs, []time.Time{t2, t1}, time.Time.Equal) {
		t.Errorf("runs %v, want [%v %v]", late.Runs, t2, t1)
	}
}

func TestAdvanceWithinBounds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sc := every10("bounded")
	sc.EndAt = t0.Add(35 * time.Second)
	st, _, err := b.s.Create(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	b.checkHead(t, st, t0.Add(10*time.Second)) // not before start_at
	for _, s := range []int{10, 20, 30} {
		at := t0.Add(time.Duration(s) * time.Second)
		b.clock.Set(at)
		if v, err := b.s.Advance(ctx, app, occ("bounded", at)); err != nil || v != schedule.Advanced {
			t.Fatalf("advance %v = %v, %v", at, v, err)
		}
	}
	if got := b.get(t, "bounded"); !got.Next.IsZero() {
		t.Errorf("next after the last occurrence before end_at: %v, want none", got.Next)
	}
	// (Nothing claims here, so the three stay in the due set.)
	if got := b.pending(t); len(got) != 3 || got[2] != member(occ("bounded", t0.Add(30*time.Second))) {
		t.Errorf("pending %v, want the three occurrences up to end_at and no more", got)
	}
}

// TestAdvanceConcurrently: eight workers advancing the same occurrence at
// once move the head once and make one successor.
func TestAdvanceConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	st, _, err := b.s.Create(ctx, every10("s"))
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Set(st.Next)
	var wg sync.WaitGroup
	verdicts := make(chan schedule.Verdict, 8)
	for range 8 {
		wg.Go(func() {
			v, err := b.s.Advance(ctx, app, occ("s", st.Next))
			if err != nil {
				t.Errorf("advance: %v", err)
			}
			verdicts <- v
		})
	}
	wg.Wait()
	close(verdicts)
	count := map[schedule.Verdict]int{}
	for v := range verdicts {
		count[v]++
	}
	if count[schedule.Advanced] != 1 || count[schedule.Again] != 7 {
		t.Errorf("verdicts %v, want one advanced and seven again", count)
	}
	got := b.get(t, "s")
	if got.Rev != st.Rev+1 {
		t.Errorf("revision %d, want %d: the head moved more than once", got.Rev, st.Rev+1)
	}
	b.checkHead(t, got, st.Next.Add(10*time.Second))
	if p := b.pending(t); !slices.Equal(p, []string{member(occ("s", st.Next)), member(occ("s", got.Next))}) {
		t.Errorf("pending %v, want the occurrence and its one successor", p)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, id := range []string{"b", "a", "c"} {
		if _, _, err := b.s.Create(ctx, every10(id)); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := b.s.List(ctx, schedule.ListQuery{App: app, Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != "a" || page[1].ID != "b" || next == "" {
		t.Fatalf("first page = %d, %q, %v", len(page), next, err)
	}
	page, next, err = b.s.List(ctx, schedule.ListQuery{App: app, Limit: 2, Cursor: next})
	if err != nil || len(page) != 1 || page[0].ID != "c" || next != "" {
		t.Fatalf("second page = %d, %q, %v", len(page), next, err)
	}
	var ve *scheduler.ValidationError
	if _, _, err := b.s.List(ctx, schedule.ListQuery{Cursor: "junk"}); !errors.As(err, &ve) || ve.Field != "cursor" {
		t.Errorf("bad cursor: %v", err)
	}
	if _, _, err := b.s.List(ctx, schedule.ListQuery{Limit: schedule.MaxListLimit + 1}); !errors.As(err, &ve) || ve.Field != "limit" {
		t.Errorf("limit too large: %v", err)
	}
}

// TestHeadCancelledBefore: a head that comes back to an occurrence whose
// event was cancelled (pause and resume within one interval, a replace
// moving it away and back, a delete and the same create again) is pending
// again, or the chain would stop there.
func TestHeadCancelledBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("pause and resume", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, _, err := b.s.Create(ctx, every10("s")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.s.Pause(ctx, app, "s"); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(time.Second)
		st, err := b.s.Resume(ctx, app, "s")
		if err != nil {
			t.Fatal(err)
		}
		b.checkHead(t, st, t0.Add(10*time.Second))
	})
	t.Run("replace away and back", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, _, err := b.s.Create(ctx, every10("s")); err != nil {
			t.Fatal(err)
		}
		moved := every10("s")
		moved.StartAt = t0.Add(20 * time.Second)
		if _, err := b.s.Put(ctx, moved); err != nil {
			t.Fatal(err)
		}
		back := every10("s")
		back.URL = "https://example.com/back"
		st, err := b.s.Put(ctx, back)
		if err != nil {
			t.Fatal(err)
		}
		b.checkHead(t, st, t0.Add(10*time.Second))
		if ev := b.event(t, occ("s", t0.Add(20*time.Second))); ev.Status != scheduler.StatusCancelled {
			t.Errorf("the abandoned head is %s, want CANCELLED", ev.Status)
		}
	})
	t.Run("advance onto an abandoned head", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		slow := every10("s")
		slow.Every, slow.StartAt = "20s", t0.Add(20*time.Second)
		if _, _, err := b.s.Create(ctx, slow); err != nil {
			t.Fatal(err)
		}
		// Every 10s from t0+10s: the head moves to t0+10s, t0+20s is cancelled ...
		if _, err := b.s.Put(ctx, every10("s")); err != nil {
			t.Fatal(err)
		}
		// ... and comes back as the next one.
		b.clock.Set(t0.Add(10 * time.Second))
		if v, err := b.s.Advance(ctx, app, occ("s", t0.Add(10*time.Second))); err != nil || v != schedule.Advanced {
			t.Fatalf("advance = %v, %v", v, err)
		}
		b.checkHead(t, b.get(t, "s"), t0.Add(20*time.Second))
	})
	t.Run("delete and create again", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, _, err := b.s.Create(ctx, every10("s")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.s.Delete(ctx, app, "s"); err != nil {
			t.Fatal(err)
		}
		st, created, err := b.s.Create(ctx, every10("s"))
		if err != nil || !created {
			t.Fatalf("create again = %v, %v", created, err)
		}
		b.checkHead(t, st, t0.Add(10*time.Second))
	})
}
