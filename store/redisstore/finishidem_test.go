package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// outboxKinds counts the outbox entries of one event by kind.
func (b *bundle) outboxKinds(t *testing.T, id string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range outboxEntries(t, b.rdb, b.outKey(id)) {
		if m.Values["m"] == testApp+"/"+id {
			out[m.Values["k"]]++
		}
	}
	return out
}

// TestFinishIsIdempotentPerAttempt: recording the same outcome of the same
// lease twice (a pipeline go-redis sent again after losing its replies, a
// call re-run after NOSCRIPT or an error) records it once and reports it as
// the first call did: no second history line marked stale, no second
// outbox entry. Another lease's outcome is still recorded as stale.
func TestFinishIsIdempotentPerAttempt(t *testing.T) {
	type finish struct {
		worker string
		status scheduler.Status
		code   int
		at     time.Duration // after the claim
	}
	completed := finish{worker: testWorker, status: scheduler.StatusCompleted, code: 200}
	retry := finish{worker: testWorker, status: scheduler.StatusPending, code: 503}
	late := finish{worker: "w2", status: scheduler.StatusFailed, code: 404, at: time.Second}
	cases := []struct {
		name       string
		calls      []finish
		wantHeld   []bool
		wantStatus scheduler.Status
		wantLines  []bool // stale flag of each history line
		wantKinds  map[string]int
	}{
		{"completed twice", []finish{completed, completed}, []bool{true, true},
			scheduler.StatusCompleted, []bool{false}, map[string]int{"create": 1, "final": 1}},
		{"retry twice", []finish{retry, retry}, []bool{true, true},
			scheduler.StatusPending, []bool{false}, map[string]int{"create": 1, "attempt": 1}},
		{"completed three times", []finish{completed, completed, completed}, []bool{true, true, true},
			scheduler.StatusCompleted, []bool{false}, map[string]int{"create": 1, "final": 1}},
		{"another lease's late outcome twice", []finish{late, late}, []bool{false, false},
			scheduler.StatusProcessing, []bool{true}, map[string]int{"create": 1, "attempt": 1}},
		{"recorded, then another lease's outcome", []finish{completed, late, completed, late}, []bool{true, false, true, false},
			scheduler.StatusCompleted, []bool{false, true}, map[string]int{"create": 1, "final": 1, "attempt": 1}},
	}
	for _, be := range backends {
		for _, tc := range cases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				e := setupOutbox(t, be.real)
				ctx := context.Background()
				id := "idem"
				l := e.createAndClaim(t, newEvent(id, e.now, e.now))
				for i, f := range tc.calls {
					lease := l
					lease.Worker = f.worker
					o := scheduler.Outcome{Status: f.status, Attempt: scheduler.Attempt{
						Attempt: l.Attempt, At: e.now.Add(f.at).UnixMilli(), StatusCode: f.code, Worker: f.worker, DurationMS: 12}}
					if f.status == scheduler.StatusPending {
						o.Backoff = time.Minute
					}
					var held bool
					var err error
					if i%2 == 0 {
						held, err = e.store.Finish(ctx, lease, o, e.now.Add(f.at))
					} else {
						r := e.store.FinishMany(ctx, []scheduler.FinishItem{{Lease: lease, Outcome: o, Now: e.now.Add(f.at)}})
						held, err = r[0].Held, r[0].Err
					}
					if err != nil || held != tc.wantHeld[i] {
						t.Fatalf("call %d (%+v): held %v, err %v; want held %v", i, f, held, err, tc.wantHeld[i])
					}
				}
				got := e.get(t, id)
				if got.Status != tc.wantStatus || got.Attempts != 1 {
					t.Errorf("status %s, attempts %d; want %s, 1", got.Status, got.Attempts, tc.wantStatus)
				}
				if len(got.History) != len(tc.wantLines) {
					t.Fatalf("history %+v: want %d lines", got.History, len(tc.wantLines))
				}
				for i, stale := range tc.wantLines {
					if got.History[i].Stale != stale || got.History[i].Attempt != 1 {
						t.Errorf("history[%d] = %+v, want attempt 1, stale %v", i, got.History[i], stale)
					}
				}
				if kinds := e.outboxKinds(t, id); !equalCounts(kinds, tc.wantKinds) {
					t.Errorf("outbox entries by kind %v, want %v", kinds, tc.wantKinds)
				}
				if tc.wantStatus == scheduler.StatusPending {
					due, err := e.rdb.ZScore(ctx, e.dueKey(id), testApp+"/"+id).Result()
					if err != nil || int64(due) != e.now.Add(time.Minute).UnixMilli() {
						t.Errorf("due score %v (err %v), want the first call's backoff: %d", due, err, e.now.Add(time.Minute).UnixMilli())
					}
				}
			})
		}
	}
}

// TestFinishSentAgainWhenTheAttemptComesBack: the same worker can claim
// the same attempt number of an event again (a requeue that resets its
// attempts; park, recheck and giveback take one back). A finish call for
// the earlier claim sent again then finds the worker and attempt of the
// lease it had, but its history line is there already: it changes nothing,
// in either layout (a compact event's fast path took it for the new
// attempt's outcome once: a review found it).
func TestFinishSentAgainWhenTheAttemptComesBack(t *testing.T) {
	for _, be := range backends {
		for _, layout := range []int{layoutHash, layoutCompact} {
			for _, how := range []string{"requeue with reset", "park"} {
				t.Run(fmt.Sprintf("%s/layout %d/%s", be.name, layout, how), func(t *testing.T) {
					e := setupOutbox(t, be.real, Config{Namespace: testNS, Shards: 1, Retention: testRetention,
						WakeHorizon: testHorizon, EventLayout: layout})
					ctx := context.Background()
					id := "again"
					l := e.createAndClaim(t, newEvent(id, e.now, e.now))
					call := []scheduler.FinishItem{{Lease: l, Now: e.now, Outcome: scheduler.Outcome{Status: scheduler.StatusFailed,
						Attempt: scheduler.Attempt{Attempt: l.Attempt, At: e.now.UnixMilli(), StatusCode: 404, Worker: l.Worker, DurationMS: 5}}}}
					wantHeld, wantStale := true, false
					switch how {
					case "requeue with reset":
						if r := e.store.FinishMany(ctx, call); r[0].Err != nil || !r[0].Held {
							t.Fatalf("first call: %+v", r[0])
						}
						if _, err := e.store.Requeue(ctx, testApp, id, []scheduler.Status{scheduler.StatusFailed}, true, e.at(time.Second)); err != nil {
							t.Fatal(err)
						}
					case "park":
						if ok, err := e.store.Park(ctx, l, e.at(time.Second), e.now); err != nil || !ok {
							t.Fatalf("Park = %v, %v", ok, err)
						}
						// The outcome of the parked claim comes late: recorded stale.
						if r := e.store.FinishMany(ctx, call); r[0].Err != nil || r[0].Held {
							t.Fatalf("first call: %+v", r[0])
						}
						wantHeld, wantStale = false, true
					}
					c := e.claim(t, testWorker, 10, e.at(2*time.Second))
					if len(c.Events) != 1 || c.Events[0].Attempts != l.Attempt {
						t.Fatalf("claimed again: %+v; want attempt %d again", c.Events, l.Attempt)
					}
					before := e.outboxKinds(t, id)
					r := e.store.FinishMany(ctx, call) // the first call, sent again
					if r[0].Err != nil || r[0].Held != wantHeld {
						t.Fatalf("the call sent again: %+v; want held %v, as the first", r[0], wantHeld)
					}
					got := e.get(t, id)
					if got.Status != scheduler.StatusProcessing || len(got.History) != 1 || got.History[0].Stale != wantStale {
						t.Errorf("after the call sent again: %s, history %+v; want PROCESSING and the one line (stale %v)",
							got.Status, got.History, wantStale)
					}
					if after := e.outboxKinds(t, id); !equalCounts(after, before) {
						t.Errorf("outbox entries %v after the call sent again, %v before", after, before)
					}
				})
			}
		}
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFinishPipelineRetriedAfterLostReply plays the fault itself on a real
// redis-server: the connection breaks after Redis ran the finishing scripts
// and before their replies arrive, go-redis sends the pipeline again on a
// new connection, and the outcomes are recorded once each, reported as
// recorded (not as a lost lease).
func TestFinishPipelineRetriedAfterLostReply(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.StartProxy(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: 3})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	st, err := New(ctx, rdb, Config{Namespace: testNS, Shards: 1, Retention: testRetention, WakeHorizon: testHorizon, EventLayout: testLayout})
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	b := &bundle{store: st, rdb: redis.NewClient(&redis.Options{Addr: srv.Addr()}), now: now}
	t.Cleanup(func() { _ = b.rdb.Close() })
	for _, id := range []string{"lost-ack", "lost-retry"} {
		b.create(t, newEvent(id, now, now))
	}
	c := b.claim(t, testWorker, 10, now)
	if len(c.Events) != 2 {
		t.Fatalf("claimed %d events, want 2", len(c.Events))
	}
	var items []scheduler.FinishItem
	for _, ev := range c.Events {
		o := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{
			Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 200, Worker: testWorker}}
		if ev.ID == "lost-retry" {
			o = scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Minute, Attempt: scheduler.Attempt{
				Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 503, Worker: testWorker}}
		}
		items = append(items, scheduler.FinishItem{
			Lease: scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts}, Outcome: o, Now: now})
	}
	// finishmany.lua answers with each outcome's result, the retry's the next due time.
	dropped := proxy.DropReply([]byte(":" + strconv.FormatInt(now.Add(time.Minute).UnixMilli(), 10) + "\r\n"))
	res := st.FinishMany(ctx, items)
	select {
	case <-dropped:
	default:
		t.Fatal("the proxy dropped no reply: the fault was not played")
	}
	for i, r := range res {
		if r.Err != nil || !r.Held {
			t.Errorf("%s: %+v, want recorded", items[i].Lease.ID, r)
		}
	}
	want := map[string]struct {
		status scheduler.Status
		kinds  map[string]int
	}{
		"lost-ack":   {scheduler.StatusCompleted, map[string]int{"create": 1, "final": 1}},
		"lost-retry": {scheduler.StatusPending, map[string]int{"create": 1, "attempt": 1}},
	}
	for id, w := range want {
		got := b.get(t, id)
		if got.Status != w.status || len(got.History) != 1 || got.History[0].Stale {
			t.Errorf("%s: status %s, history %+v; want %s with one attempt, not stale", id, got.Status, got.History, w.status)
		}
		if kinds := b.outboxKinds(t, id); !equalCounts(kinds, w.kinds) {
			t.Errorf("%s: outbox entries by kind %v, want %v", id, kinds, w.kinds)
		}
	}
}
