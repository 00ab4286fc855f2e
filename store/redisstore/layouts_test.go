package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
)

// TestLayoutsSideBySide: a namespace made before compact events (its
// events are hashes) is switched over with UseCompactEvents while it holds
// events in every state. From then on new events are compact, and every
// operation works on both kinds alike: claim (in one call), finish, retry,
// cancel, requeue, reap, archive, Get and GetMany.
func TestLayoutsSideBySide(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		if be.layout != layoutHash {
			continue
		}
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := be.open(t)
			old := openChunkStore(t, be, rdb)
			if old.EventLayout() != layoutHash {
				t.Fatalf("a namespace made with hashes writes layout %d", old.EventLayout())
			}
			// Recent: archiving starts a retention window that must not have
			// ended (the events would be gone).
			now := time.Now().UTC().Truncate(time.Millisecond)
			create := func(st *Store, id string) {
				t.Helper()
				ev := newEvent(id, now, now)
				ev.Body = allBytes()[:100]
				if ex, err := st.Create(ctx, ev, now); err != nil || ex != nil {
					t.Fatalf("create %s: %v, %v", id, ex, err)
				}
			}
			for _, id := range []string{"h-done", "h-fail", "h-cancel", "h-reap", "h-late"} {
				create(old, id)
			}
			// One hash is claimed before the switch: its finish comes after.
			c, err := old.Claim(ctx, 0, testWorker, 1, visibility, now)
			if err != nil || len(c.Events) != 1 {
				t.Fatalf("claim before the switch: %+v, %v", c, err)
			}
			claimedBefore := c.Events[0]

			if switched, err := old.UseCompactEvents(ctx); err != nil || !switched {
				t.Fatalf("UseCompactEvents = %v, %v", switched, err)
			}
			if switched, err := old.UseCompactEvents(ctx); err != nil || switched {
				t.Fatalf("UseCompactEvents again = %v, %v; want false, nil", switched, err)
			}
			if old.EventLayout() != layoutHash {
				t.Fatalf("a store connected before the switch writes layout %d after it; want hashes until it restarts", old.EventLayout())
			}
			st := openChunkStore(t, be, rdb) // a process that starts after the switch
			if st.EventLayout() != layoutNewest {
				t.Fatalf("after the switch a new store writes layout %d, want %d", st.EventLayout(), layoutNewest)
			}
			for _, id := range []string{"c-done", "c-fail", "c-cancel", "c-reap", "c-late"} {
				create(st, id)
			}
			// h-* events are hashes, c-* ones compact values.
			checkKinds := func(when string) {
				t.Helper()
				for _, id := range []string{"h-done", "c-done"} {
					typ := rdb.Type(ctx, st.k.ev(0, testApp+"/"+id)).Val()
					if want := map[byte]string{'h': "hash", 'c': "string"}[id[0]]; typ != want {
						t.Fatalf("%s: %s is a %s, want a %s", when, id, typ, want)
					}
				}
			}
			checkKinds("created")
			// An identity held by the other kind is found, not overwritten:
			// compact creates (single and batch) meet a hash, and a process
			// still writing hashes meets a compact event.
			for _, c := range []struct {
				st *Store
				id string
			}{{st, "h-done"}, {old, "c-done"}} {
				ev := newEvent(c.id, now, now)
				if ex, err := c.st.Create(ctx, ev, now); err != nil || ex == nil || ex.ID != c.id {
					t.Fatalf("create %s again: %v, %v; want the existing event", c.id, ex, err)
				}
				exs, err := c.st.CreateMany(ctx, []*scheduler.Event{newEvent(c.id, now, now)}, now)
				if err != nil || len(exs) != 1 || exs[0].Err != nil || exs[0].Existing == nil || exs[0].Existing.ID != c.id {
					t.Fatalf("batch create %s again: %v, %v; want the existing event", c.id, exs, err)
				}
			}
			checkKinds("created again")

			// Both kinds in one claim; the one claimed before finishes too.
			c, err = st.Claim(ctx, 0, testWorker, 100, visibility, now)
			if err != nil || len(c.Events) != 9 {
				t.Fatalf("claim after the switch: %d events, %v", len(c.Events), err)
			}
			leases := map[string]scheduler.Lease{claimedBefore.ID: {App: testApp, ID: claimedBefore.ID, Worker: testWorker, Attempt: 1}}
			for _, ev := range c.Events {
				if !slices.Equal(ev.Body, allBytes()[:100]) || ev.Status != scheduler.StatusProcessing || ev.Attempts != 1 {
					t.Fatalf("claimed %s: %+v", ev.ID, ev)
				}
				leases[ev.ID] = scheduler.Lease{App: testApp, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts}
			}
			at := now.Add(time.Second)
			outcome := func(id string) scheduler.Outcome {
				switch id[2:] {
				case "done":
					return scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 200}}
				case "fail":
					return scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 400}}
				case "late":
					return scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Minute,
						Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 503}}
				}
				return scheduler.Outcome{}
			}
			for id, l := range leases {
				if id[2:] == "reap" || id[2:] == "cancel" {
					continue
				}
				if held, err := st.Finish(ctx, l, outcome(id), at); err != nil || !held {
					t.Fatalf("finish %s: %v, %v", id, held, err)
				}
				// Sent again, it changes nothing (the finisher's retry).
				if held, err := st.Finish(ctx, l, outcome(id), at); err != nil || !held {
					t.Fatalf("finish %s again: %v, %v", id, held, err)
				}
			}
			// The leases of the reap ones expire.
			if n, err := st.Reap(ctx, 0, 100, 5, now.Add(time.Hour)); err != nil || n != 4 {
				t.Fatalf("reap = %d, %v; want the 4 unfinished leases", n, err)
			}
			for _, id := range []string{"h-cancel", "c-cancel"} {
				if _, err := st.Cancel(ctx, testApp, id, at); err != nil {
					t.Fatalf("cancel %s: %v", id, err)
				}
			}
			for _, id := range []string{"h-fail", "c-fail"} {
				ev, err := st.Requeue(ctx, testApp, id, []scheduler.Status{scheduler.StatusFailed}, true, at)
				if err != nil || ev.Status != scheduler.StatusPending || ev.Attempts != 0 {
					t.Fatalf("requeue %s: %+v, %v", id, ev, err)
				}
			}

			want := map[string]scheduler.Status{"h-done": scheduler.StatusCompleted, "c-done": scheduler.StatusCompleted,
				"h-fail": scheduler.StatusPending, "c-fail": scheduler.StatusPending,
				"h-cancel": scheduler.StatusCancelled, "c-cancel": scheduler.StatusCancelled,
				"h-reap": scheduler.StatusPending, "c-reap": scheduler.StatusPending,
				"h-late": scheduler.StatusPending, "c-late": scheduler.StatusPending}
			ids := slices.Sorted(func(yield func(string) bool) {
				for id := range want {
					if !yield(id) {
						return
					}
				}
			})
			var idents []scheduler.Ident
			for _, id := range ids {
				idents = append(idents, scheduler.Ident{App: testApp, ID: id})
			}
			many, err := st.GetMany(ctx, idents)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				ev := many[i]
				if ev == nil || ev.Status != want[id] {
					t.Errorf("%s: %+v, want %s", id, ev, want[id])
					continue
				}
				if id[2:] == "reap" && (len(ev.History) != 1 || ev.History[0].Error != "lease expired") {
					t.Errorf("%s: history %+v, want the expired lease", id, ev.History)
				}
				if id[2:] == "late" && (len(ev.History) != 1 || ev.History[0].StatusCode != 503 || ev.LastStatusCode != 503) {
					t.Errorf("%s: %+v, want the retried attempt", id, ev)
				}
			}

			// Archived: the outbox reads both kinds whole, and the finished
			// events get their retention, the delivered ones without body.
			recs, err := st.ReadOutbox(ctx, 0, "a1", false, 1000)
			if err != nil {
				t.Fatal(err)
			}
			finals := map[string]bool{}
			for _, r := range recs {
				if r.Kind == "" {
					t.Fatalf("outbox entry %s not understood", r.StreamID)
				}
				if r.Kind == scheduler.RecordFinal {
					finals[r.ID] = true
					if r.Event == nil || r.Event.URL == "" {
						t.Errorf("final entry of %s without its event: %+v", r.ID, r.Event)
					}
				}
			}
			if err := st.AckOutbox(ctx, 0, recs); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"h-done", "c-done"} {
				if !finals[id] {
					t.Errorf("no final entry for %s", id)
				}
				ev, err := st.Get(ctx, testApp, id)
				if err != nil || !ev.BodyDropped || ev.Status != scheduler.StatusCompleted {
					t.Errorf("%s after archiving: %+v, %v; want COMPLETED without body", id, ev, err)
				}
				if ttl := rdb.PTTL(ctx, st.k.ev(0, testApp+"/"+id)).Val(); ttl <= 0 {
					t.Errorf("%s after archiving: PTTL %s, want the retention window", id, ttl)
				}
			}
		})
	}
}

// TestNewRefusesANewerLayout: a process starts on a namespace of any
// layout it knows, and refuses one a newer release recorded (it could not
// read what that release writes), naming it.
func TestNewRefusesANewerLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	for layout := layoutHash; layout <= layoutNewest+1; layout++ {
		ns := fmt.Sprint("l", layout)
		mr.HSet(ns+":meta", "shards", "4", "layout", fmt.Sprint(layout))
		st, err := New(ctx, rdb, Config{Namespace: ns})
		switch {
		case layout <= layoutNewest && (err != nil || st.EventLayout() != layout):
			t.Errorf("layout %d: New = %v; want a store of that layout", layout, err)
		case layout > layoutNewest && (err == nil || !strings.Contains(err.Error(), "a newer release made it")):
			t.Errorf("layout %d: New = %v; want refused as a newer release's", layout, err)
		}
	}
}
