package redisstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
)

// TestGiveBackOrphans: the events of a worker's claim records (claim.lua)
// whose reply never reached it, claimed at least the grace ago, that it
// does not hold and whose lease has not expired, go back to due, keeping
// their due time and not counting the attempt. Records younger than the
// grace stay, and those naming an event the worker holds; the others are
// deleted once looked at; another worker's are left alone, as are the claims whose reply came (their record deleted by
// the next claim). Nothing goes to the outbox.
func TestGiveBackOrphans(t *testing.T) {
	const grace = time.Second
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			// lostClaim claims event id for worker at time at as claim.lua
			// does for the store, but the reply never reaches the store: its
			// record stays.
			lostClaim := func(id, worker string, due, at time.Time, vis time.Duration) {
				t.Helper()
				e.create(t, newEvent(id, due, due))
				keys, args, _ := e.store.claimCall(0, worker, 1, vis, at)
				res, err := luascripts.Claim.Run(ctx, e.rdb, keys, args...).Slice()
				if err != nil || len(res) != 4+claimStride || res[4] != testApp+"/"+id {
					t.Fatalf("claim %s: %v, %v", id, res, err)
				}
			}
			now := e.now
			past := now.Add(-10 * time.Second)
			lostClaim("orphan", testWorker, past, now.Add(-5*time.Second), time.Minute)
			lostClaim("held", testWorker, past, now.Add(-5*time.Second), time.Minute)
			lostClaim("expired", testWorker, past, now.Add(-5*time.Second), time.Second)
			lostClaim("others", "w2", past, now.Add(-5*time.Second), time.Minute)
			// A claim whose reply came: the next claim deletes its record.
			e.create(t, newEvent("confirmed", past, past))
			if c, err := e.store.Claim(ctx, 0, testWorker, 1, time.Minute, now.Add(-5*time.Second)); err != nil ||
				len(c.Events) != 1 || c.Events[0].ID != "confirmed" {
				t.Fatalf("claim confirmed: %+v, %v", c, err)
			}
			lostClaim("young", testWorker, past, now.Add(-grace/2), time.Minute)
			// A stray record: it names an event another worker holds.
			if err := e.rdb.HSet(ctx, e.claimsKey("others", testWorker), "stray",
				strconv.FormatInt(now.Add(-5*time.Second).UnixMilli(), 10)+" "+testApp+"/others").Err(); err != nil {
				t.Fatal(err)
			}
			if recs := e.claimRecords(t, "orphan", testWorker); len(recs) != 5 {
				t.Fatalf("records before = %q, want orphan, held, expired, young and the stray one (the confirmed claim's deleted by young's claim)", recs)
			}
			outBefore := e.xlen(t, e.outKey("orphan"))

			n, err := e.store.GiveBackOrphans(ctx, testWorker, [][]string{{testApp + "/held"}}, grace, now)
			if err != nil || n != 1 {
				t.Fatalf("GiveBackOrphans: %d, %v; want 1", n, err)
			}
			// young's is younger than the grace; held's names an event the
			// worker holds (perhaps under an earlier claim): both stay.
			if recs := e.claimRecords(t, "orphan", testWorker); len(recs) != 2 ||
				!slices.Equal(recs[0], []string{testApp + "/held"}) || !slices.Equal(recs[1], []string{testApp + "/young"}) {
				t.Fatalf("records after = %q, want held's and young's", recs)
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
			for _, id := range []string{"held", "young", "expired", "confirmed"} {
				if s := e.get(t, id).Status; s != scheduler.StatusProcessing {
					t.Errorf("%s is %s, want PROCESSING (left alone)", id, s)
				}
			}
			if ev := e.get(t, "others"); ev.Status != scheduler.StatusProcessing || ev.Worker != "w2" {
				t.Errorf("others: %s by %q, want PROCESSING by w2", ev.Status, ev.Worker)
			}
			if recs := e.claimRecords(t, "others", "w2"); len(recs) != 1 {
				t.Errorf("w2's records = %q, want its one", recs)
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
			// Once the worker lets held go without finishing it (its claim
			// was an earlier one), the record left names it: back it goes.
			if n, err := e.store.GiveBackOrphans(ctx, testWorker, [][]string{nil}, grace, now); err != nil || n != 1 {
				t.Errorf("GiveBackOrphans holding nothing: %d, %v; want held given back", n, err)
			}
			if got := e.get(t, "held"); got.Status != scheduler.StatusPending || got.Attempts != 0 {
				t.Errorf("held: %s, attempts %d; want PENDING, 0", got.Status, got.Attempts)
			}
		})
	}
}

// TestClaimSentAgain: a claim call sent again (go-redis retries a command
// whose reply the broken connection lost) writes its own claim record
// beside the first run's and names it in its reply, so confirming that
// reply leaves the first run's record, whose events giveback.lua hands
// back; the events of the run whose reply came stay the worker's.
func TestClaimSentAgain(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			past := e.now.Add(-10 * time.Second)
			e.create(t, newEvent("first", past, past))
			e.create(t, newEvent("second", past.Add(time.Millisecond), past.Add(time.Millisecond)))
			at := e.now.Add(-5 * time.Second)
			keys, args, _ := e.store.claimCall(0, testWorker, 1, time.Minute, at)
			// The first run: its reply is lost.
			if err := luascripts.Claim.Run(ctx, e.rdb, keys, args...).Err(); err != nil {
				t.Fatal(err)
			}
			// The same call again: its reply comes.
			res, err := luascripts.Claim.Run(ctx, e.rdb, keys, args...).Slice()
			c, err := e.store.claimResult(0, testWorker, res, err, nil)
			if err != nil || len(c.Events) != 1 || c.Events[0].ID != "second" {
				t.Fatalf("second run: %+v, %v; want the second event", c, err)
			}
			if name, _ := res[2].(string); name == args[8] {
				t.Fatalf("the second run wrote record %q, the first run's name", name)
			}
			// The next claim deletes the record the store had the reply of.
			if c, err := e.store.Claim(ctx, 0, testWorker, 1, time.Minute, at); err != nil || len(c.Events) != 0 {
				t.Fatalf("next claim: %+v, %v", c, err)
			}
			if recs := e.claimRecords(t, "first", testWorker); len(recs) != 1 || !slices.Equal(recs[0], []string{testApp + "/first"}) {
				t.Fatalf("records = %q, want the first run's alone", recs)
			}
			n, err := e.store.GiveBackOrphans(ctx, testWorker, [][]string{{testApp + "/second"}}, time.Second, e.now)
			if err != nil || n != 1 {
				t.Fatalf("GiveBackOrphans = %d, %v; want the first run's event", n, err)
			}
			if got := e.get(t, "first"); got.Status != scheduler.StatusPending || got.Attempts != 0 {
				t.Errorf("first: %s, attempts %d; want PENDING, 0", got.Status, got.Attempts)
			}
			if got := e.get(t, "second"); got.Status != scheduler.StatusProcessing || got.Worker != testWorker {
				t.Errorf("second: %s by %q; want PROCESSING by %s", got.Status, got.Worker, testWorker)
			}
			if recs := e.claimRecords(t, "first", testWorker); len(recs) != 0 {
				t.Errorf("records after giving back = %q, want none", recs)
			}
		})
	}
}
