package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestGiveBackOrphans: of the members in a worker's processing list, only
// the claims it does not hold, older than the grace, whose lease has not
// expired, go back to due, keeping their due time and not counting the
// attempt; the list loses entries of events the worker does not hold.
// Nothing goes to the outbox.
func TestGiveBackOrphans(t *testing.T) {
	const grace = time.Second
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			claimOne := func(id, worker string, due, at time.Time, vis time.Duration) {
				t.Helper()
				e.create(t, newEvent(id, due, due))
				c, err := e.store.Claim(ctx, 0, worker, 1, vis, at)
				if err != nil || len(c.Events) != 1 || c.Events[0].ID != id {
					t.Fatalf("claim %s: %+v, %v", id, c, err)
				}
			}
			now := e.now
			claimOne("orphan", testWorker, now.Add(-10*time.Second), now.Add(-5*time.Second), time.Minute)
			claimOne("held", testWorker, now.Add(-10*time.Second), now.Add(-5*time.Second), time.Minute)
			claimOne("young", testWorker, now.Add(-10*time.Second), now.Add(-grace/2), time.Minute)
			claimOne("expired", testWorker, now.Add(-10*time.Second), now.Add(-5*time.Second), time.Second)
			claimOne("others", "w2", now.Add(-10*time.Second), now.Add(-5*time.Second), time.Minute)
			// A stray entry: the list names an event another worker holds.
			if err := e.rdb.RPush(ctx, e.procKey("others", testWorker), testApp+"/others").Err(); err != nil {
				t.Fatal(err)
			}
			outBefore := e.xlen(t, e.outKey("orphan"))

			n, err := e.store.GiveBackOrphans(ctx, testWorker, [][]string{{testApp + "/held"}}, grace, now)
			if err != nil || n != 1 {
				t.Fatalf("GiveBackOrphans: %d, %v; want 1", n, err)
			}
			proc, err := e.rdb.LRange(ctx, e.procKey("orphan", testWorker), 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			want := []string{testApp + "/held", testApp + "/young", testApp + "/expired"}
			if len(proc) != len(want) {
				t.Fatalf("%s holds %v, want %v", e.procKey("orphan", testWorker), proc, want)
			}
			for i := range want {
				if proc[i] != want[i] {
					t.Fatalf("%s holds %v, want %v", e.procKey("orphan", testWorker), proc, want)
				}
			}
			got := e.get(t, "orphan")
			if got.Status != scheduler.StatusPending || got.Attempts != 0 || got.Worker != "" || len(got.History) != 0 {
				t.Errorf("orphan: status %s, attempts %d, worker %q, history %+v; want PENDING, 0, none, none",
					got.Status, got.Attempts, got.Worker, got.History)
			}
			if due, err := e.rdb.ZScore(ctx, e.dueKey("orphan"), testApp+"/orphan").Result(); err != nil ||
				int64(due) != now.Add(-10*time.Second).UnixMilli() {
				t.Errorf("orphan due score %v (err %v), want its due time %d", due, err, now.Add(-10*time.Second).UnixMilli())
			}
			if err := e.rdb.ZScore(ctx, e.leaseKey("orphan"), testApp+"/orphan").Err(); err == nil {
				t.Error("orphan still has a lease")
			}
			for _, id := range []string{"held", "young", "expired"} {
				if s := e.get(t, id).Status; s != scheduler.StatusProcessing {
					t.Errorf("%s is %s, want PROCESSING (left alone)", id, s)
				}
			}
			if ev := e.get(t, "others"); ev.Status != scheduler.StatusProcessing || ev.Worker != "w2" {
				t.Errorf("others: %s by %q, want PROCESSING by w2", ev.Status, ev.Worker)
			}
			if n, _ := e.rdb.LLen(ctx, e.procKey("others", "w2")).Result(); n != 1 {
				t.Errorf("w2's list holds %d members, want 1", n)
			}
			if after := e.xlen(t, e.outKey("orphan")); after != outBefore {
				t.Errorf("outbox grew from %d to %d entries: giving back must not reach the archive", outBefore, after)
			}

			// Claimed again, the attempt has the number the lost claim had,
			// and its outcome is recorded.
			c, err := e.store.Claim(ctx, 0, testWorker, 10, time.Minute, now)
			if err != nil || len(c.Events) != 1 || c.Events[0].ID != "orphan" || c.Events[0].Attempts != 1 {
				t.Fatalf("claim again: %+v, %v; want orphan at attempt 1", c.Events, err)
			}
			held, err := e.store.Finish(ctx, scheduler.Lease{App: testApp, ID: "orphan", Worker: testWorker, Attempt: 1},
				scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, At: now.UnixMilli(), StatusCode: 200}}, now)
			if err != nil || !held {
				t.Fatalf("finish: held %v, %v", held, err)
			}

			// A second look finds nothing more to give back.
			if n, err := e.store.GiveBackOrphans(ctx, testWorker, [][]string{{testApp + "/held"}}, grace, now); err != nil || n != 0 {
				t.Errorf("second GiveBackOrphans: %d, %v; want 0", n, err)
			}
		})
	}
}
