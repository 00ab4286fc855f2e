package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestFinishMany: outcomes recorded in one pipeline, each on its own: a held
// lease finishes, a lost one is refused without affecting the others, and
// calls that meet NOSCRIPT (SCRIPT FLUSH in between) run again once.
func TestFinishMany(t *testing.T) {
	for _, flush := range []bool{false, true} {
		b := setup(t)
		ctx := context.Background()
		var items []scheduler.FinishItem
		for _, id := range []string{"f1", "f2", "f3"} {
			b.create(t, newEvent(id, b.now, b.now))
		}
		c := b.claim(t, testWorker, 10, b.now)
		if len(c.Events) != 3 {
			t.Fatalf("claimed %d", len(c.Events))
		}
		for i, ev := range c.Events {
			l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts}
			o := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: ev.Attempts, StatusCode: 200}}
			if i == 1 {
				l.Worker = "someone-else" // not the lease holder
			}
			if i == 2 {
				o = scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Second, Attempt: scheduler.Attempt{Attempt: ev.Attempts, StatusCode: 503}}
			}
			items = append(items, scheduler.FinishItem{Lease: l, Outcome: o, Now: b.now})
		}
		if flush {
			if err := b.rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		res := b.store.FinishMany(ctx, items)
		want := []bool{true, false, true}
		for i, r := range res {
			if r.Err != nil || r.Held != want[i] {
				t.Errorf("flush=%v: result %d = %+v, want held=%v", flush, i, r, want[i])
			}
		}
		wantStatus := []scheduler.Status{scheduler.StatusCompleted, scheduler.StatusProcessing, scheduler.StatusPending}
		for i, it := range items {
			if got := b.get(t, it.Lease.ID).Status; got != wantStatus[i] {
				t.Errorf("flush=%v: %s is %s, want %s", flush, it.Lease.ID, got, wantStatus[i])
			}
		}
	}
}
