package schedule_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/store/redisstore"
)

func TestAdvanceMany(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := b.s.Create(ctx, every10(id)); err != nil {
			t.Fatal(err)
		}
	}
	t1, t2 := t0.Add(10*time.Second), t0.Add(20*time.Second)
	b.clock.Set(t1)
	if v, err := b.s.Advance(ctx, app, occ("c", t1)); err != nil || v != schedule.Advanced {
		t.Fatalf("advance c = %v, %v", v, err)
	}
	res := b.s.AdvanceMany(ctx, []scheduler.Ident{
		{App: app, ID: occ("a", t1)},                  // its head: advanced
		{App: app, ID: occ("b", t1)},                  // its head: advanced
		{App: app, ID: occ("c", t1)},                  // advanced before: again
		{App: app, ID: occ("a", t0.Add(time.Second))}, // neither: stale
		{App: app, ID: occ("gone", t1)},               // no such schedule: stale
		{App: app, ID: "not-an-occurrence"},           // an error
	})
	want := []schedule.Verdict{schedule.Advanced, schedule.Advanced, schedule.Again, schedule.Stale, schedule.Stale, schedule.Stale}
	for i, r := range res {
		if r.Verdict != want[i] || (r.Err != nil) != (i == 5) {
			t.Errorf("result %d = %v, %v; want %v", i, r.Verdict, r.Err, want[i])
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		st := b.get(t, id)
		b.checkHead(t, st, t2)
		if !slices.EqualFunc(st.Runs, []time.Time{t1}, time.Time.Equal) {
			t.Errorf("%s runs %v, want [%v]", id, st.Runs, t1)
		}
	}
}

// TestAdvanceManyLosesARace: the head moves (a pause) between AdvanceMany's
// read and its compare-and-set. The successor it made first must not stay
// pending: the paused schedule has no next occurrence.
func TestAdvanceManyLosesARace(t *testing.T) {
	t.Parallel()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "t", Shards: 1})
	clock := scheduler.NewManualClock(t0)
	racy := &racingStore{Store: st}
	s := schedule.New(racy, st, schedule.Config{Clock: clock})
	racy.s = s
	ctx := context.Background()
	if _, _, err := s.Create(ctx, every10("s")); err != nil {
		t.Fatal(err)
	}
	t1, t2 := t0.Add(10*time.Second), t0.Add(20*time.Second)
	clock.Set(t1)
	res := s.AdvanceMany(ctx, []scheduler.Ident{{App: app, ID: occ("s", t1)}})
	if res[0].Err != nil {
		t.Fatalf("advance: %v", res[0].Err)
	}
	got, err := s.Get(ctx, app, "s")
	if err != nil || !got.Paused || !got.Next.IsZero() {
		t.Fatalf("after the race: %+v, %v; want paused without a next occurrence", got, err)
	}
	ev, err := st.Get(ctx, app, occ("s", t2))
	if err == nil && ev.Status != scheduler.StatusCancelled {
		t.Errorf("the successor made before the lost race is %s, want CANCELLED (or none)", ev.Status)
	}
}

// racingStore pauses the schedule right before the first batched write.
type racingStore struct {
	*redisstore.Store
	s    *schedule.Schedules
	once sync.Once
}

func (r *racingStore) WriteSchedules(ctx context.Context, sts []*schedule.State, expects []int64) ([]int64, []error) {
	r.once.Do(func() {
		if _, err := r.s.Pause(ctx, sts[0].App, sts[0].ID); err != nil {
			panic(err)
		}
	})
	return r.Store.WriteSchedules(ctx, sts, expects)
}

func TestAdvanceManyConcurrently(t *testing.T) {
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
			r := b.s.AdvanceMany(ctx, []scheduler.Ident{{App: app, ID: occ("s", st.Next)}})[0]
			if r.Err != nil {
				t.Errorf("advance: %v", r.Err)
			}
			verdicts <- r.Verdict
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
