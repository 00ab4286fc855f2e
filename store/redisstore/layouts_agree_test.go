package redisstore

import (
	"context"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// TestLayoutsAgree runs the same random operations on two namespaces side
// by side, one of hashes and one of compact events, and after every step
// compares the operations' answers and every event as Get reads it. The
// operations are the ones that change an event: claim, finish (the usual
// outcome, a late one, a call sent again), retry, requeue with and without
// reset, reap, park, recheck, a fan-out plan, cancel, and the archive's read
// and acknowledgement; values cross the lengths where a uvarint takes a
// second or third byte. Three pairings: compact events against hashes, then
// hashes in a namespace switched to compact events, and compact events in a
// namespace of hashes (each read and changed by the other layout's
// scripts). A review found a compact-only bug this way (a finish sent again
// after the same attempt came back: TestFinishSentAgainWhenTheAttemptComesBack).
func TestLayoutsAgree(t *testing.T) {
	t.Parallel()
	if testLayout == layoutHash {
		t.Skip("sets both layouts itself: run once, in the default pass")
	}
	pairings := []struct {
		name            string
		second, recheck int // the second namespace's layout as written, then as its stores read it
	}{
		{"compact", layoutCompact, layoutCompact},
		{"hashes in a compact namespace", layoutHash, layoutCompact},
		{"compact events in a hash namespace", layoutCompact, layoutHash},
	}
	for _, real := range []bool{false, true} {
		// 250 steps take about 1 s against redis-server and 2.5 against
		// miniredis (its Lua is slow) under -race. Of the first 40 seeds, 6
		// met the bug named above, the first of them seed 8.
		seeds := 3
		if real {
			seeds = 12
		}
		for _, p := range pairings {
			for seed := range seeds {
				name := fmt.Sprintf("miniredis/%s/%d", p.name, seed)
				if real {
					name = fmt.Sprintf("redis-server/%s/%d", p.name, seed)
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var rdb *redis.Client
					if real {
						rdb = redistest.Start(t).Client()
					} else {
						rdb = redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
						t.Cleanup(func() { _ = rdb.Close() })
					}
					agree(t, rdb, int64(seed), p.second, p.recheck)
				})
			}
		}
	}
}

// agree is one run of TestLayoutsAgree: namespace "lh" of hashes against
// "lc", whose events are written in layout second and then read and
// changed by stores that take its layout to be reread.
func agree(t *testing.T, rdb *redis.Client, seed int64, second, reread int) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	open := func(ns string, layout int) *Store {
		t.Helper()
		st, err := New(ctx, rdb, Config{Namespace: ns, Shards: 1, Retention: testRetention, WakeHorizon: testHorizon, EventLayout: layout})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	sts := []*Store{open("lh", layoutHash), open("lc", second)}
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		ev := newEvent(id, now, now)
		ev.URL = "https://example.com/" + strings.Repeat("u", rng.Intn(300))
		ev.Body = []byte(strings.Repeat("b", []int{0, 1, 127, 128, 200, 16383, 16384, 20000}[rng.Intn(8)]))
		for _, st := range sts {
			if ex, err := st.Create(ctx, ev, now); err != nil || ex != nil {
				t.Fatalf("create %s: %v, %v", id, ex, err)
			}
		}
	}
	if reread != second {
		if err := rdb.HSet(ctx, "lc:meta", "layout", reread).Err(); err != nil {
			t.Fatal(err)
		}
		if sts[1] = open("lc", 0); sts[1].EventLayout() != reread {
			t.Fatalf("reopened with layout %d, want %d", sts[1].EventLayout(), reread)
		}
	}

	workers := []string{"w", "w1", "ww", "w10"} // prefixes and suffixes of one another
	var leases []scheduler.Lease
	var calls []scheduler.FinishItem
	var log []string
	for step := range 250 {
		now = now.Add(time.Duration(rng.Intn(3)) * time.Millisecond)
		if rng.Intn(5) == 0 {
			now = now.Add(time.Duration(rng.Intn(2500)) * time.Millisecond)
		}
		// Every random choice is made once, for both namespaces.
		op := []string{"claim", "claim", "claim", "claim", "claim", "claim", "finish", "finish", "finish", "finish", "finish",
			"finish", "requeue", "requeue", "reap", "reap", "park", "archive", "archive", "plan", "cancel", "recheck"}[rng.Intn(22)]
		w := workers[rng.Intn(len(workers))]
		pick := rng.Int()
		status := []scheduler.Status{scheduler.StatusCompleted, scheduler.StatusFailed, scheduler.StatusPending,
			scheduler.StatusServiceUnavailable}[rng.Intn(4)]
		n := []int{0, 10, 127, 128, 300}[rng.Intn(5)]
		reset := rng.Intn(2) == 0
		later := time.Duration(rng.Intn(40)) * time.Second
		recent := func() scheduler.Lease { return leases[len(leases)-1-pick%min(3, len(leases))] }
		var call *scheduler.FinishItem
		switch {
		case op == "finish" && len(calls) > 0 && pick%3 == 0:
			call = &calls[pick%len(calls)] // sent again
		case op == "finish" && len(leases) > 0:
			l := recent()
			o := scheduler.Outcome{Status: status, Attempt: scheduler.Attempt{Attempt: l.Attempt, At: now.UnixMilli(),
				StatusCode: 500, Error: strings.Repeat("e", n), Worker: l.Worker, DurationMS: 3}}
			if status == scheduler.StatusPending {
				o.Backoff = time.Second
			}
			calls = append(calls, scheduler.FinishItem{Lease: l, Outcome: o, Now: now})
			call = &calls[len(calls)-1]
		case op == "finish", len(leases) == 0 && (op == "park" || op == "recheck" || op == "plan"):
			continue
		}
		var res [2]string
		var claimed []scheduler.Lease
		for i, st := range sts {
			switch op {
			case "claim":
				c, err := st.Claim(ctx, 0, w, 2, visibility, now)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, ev := range c.Events {
					got = append(got, fmt.Sprint(ev.ID, "#", ev.Attempts))
					if i == 0 {
						claimed = append(claimed, scheduler.Lease{App: testApp, ID: ev.ID, Worker: w, Attempt: ev.Attempts})
					}
				}
				res[i] = fmt.Sprint("claim by ", w, ": ", got)
			case "finish":
				r := st.FinishMany(ctx, []scheduler.FinishItem{*call})
				res[i] = fmt.Sprint("finish ", call.Lease, " ", call.Outcome.Status, ": held ", r[0].Held, " ", r[0].Err)
			case "requeue":
				ev, err := st.Requeue(ctx, testApp, ids[pick%3], []scheduler.Status{scheduler.StatusFailed, scheduler.StatusCompleted,
					scheduler.StatusServiceUnavailable, scheduler.StatusCancelled}, reset, now)
				res[i] = fmt.Sprint("requeue ", ids[pick%3], " reset ", reset, ": ", ev != nil, " ", err)
			case "reap":
				n, err := st.Reap(ctx, 0, 10, 3, now.Add(later))
				res[i] = fmt.Sprint("reap: ", n, " ", err)
			case "park":
				l := leases[pick%len(leases)]
				ok, err := st.Park(ctx, l, now.Add(time.Second), now)
				res[i] = fmt.Sprint("park ", l, ": ", ok, " ", err)
			case "recheck":
				l := recent()
				res[i] = fmt.Sprint("recheck ", l, ": ", st.Recheck(ctx, l, now.Add(time.Second), now))
			case "plan":
				l := leases[pick%len(leases)]
				plan, err := st.SetPlan(ctx, l, []byte(strings.Repeat("p", n*5)), now)
				res[i] = fmt.Sprint("plan ", l, ": ", len(plan), " ", err)
			case "cancel":
				ev, err := st.Cancel(ctx, testApp, ids[pick%3], now)
				res[i] = fmt.Sprint("cancel ", ids[pick%3], ": ", ev != nil, " ", err)
			case "archive":
				recs, err := st.ReadOutbox(ctx, 0, "c", false, 100)
				if err == nil {
					err = st.AckOutbox(ctx, 0, recs)
				}
				res[i] = fmt.Sprint("archive: ", len(recs), " ", err)
			}
		}
		leases = append(leases, claimed...)
		log = append(log, res[0])
		if res[0] != res[1] {
			t.Fatalf("step %d: hashes %q, the other %q\n%s", step, res[0], res[1], strings.Join(log, "\n"))
		}
		for _, id := range ids {
			a, err1 := sts[0].Get(ctx, testApp, id)
			b, err2 := sts[1].Get(ctx, testApp, id)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("step %d (%s): event %s differs:\nhashes    %+v %v\nthe other %+v %v\n%s",
					step, res[0], id, a, err1, b, err2, strings.Join(log, "\n"))
			}
		}
	}
}
