package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/luascripts"
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

// TestFinishManyBatches: on one Redis a batch's outcomes go in one
// finishmany.lua call per finishBatch outcomes, every shard's together (a
// cluster makes one per shard: TestCluster's Outbox), each recorded as it
// would be alone, in order, whatever shard and call it lands in: over 4
// shards, more than finishBatch outcomes, finals and retries mixed, and one
// lost lease.
func TestFinishManyBatches(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	const shards = 4
	st, err := New(ctx, rdb, Config{Namespace: testNS, Shards: shards, Retention: testRetention, WakeHorizon: testHorizon,
		EventLayout: testLayout})
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	n := 3*finishBatch + 11 // ~195 per shard; sent twice below, more than finishBatch per shard
	var evs []*scheduler.Event
	for i := range n {
		evs = append(evs, newEvent("e"+strconv.Itoa(i), now, now))
	}
	if _, err := st.CreateMany(ctx, evs, now); err != nil {
		t.Fatal(err)
	}
	reqs := make([]scheduler.ClaimRequest, shards)
	for s := range reqs {
		reqs[s] = scheduler.ClaimRequest{Shard: s, Batch: n}
	}
	claims, errs := st.ClaimShards(ctx, reqs, testWorker, visibility, now)
	var items []scheduler.FinishItem
	perShard := map[int]int{}
	for s, c := range claims {
		if errs[s] != nil {
			t.Fatal(errs[s])
		}
		for _, ev := range c.Events {
			perShard[s]++
			l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts}
			a := scheduler.Attempt{Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 200}
			o := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: a}
			switch len(items) % 3 {
			case 1:
				a.StatusCode = 503
				o = scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Minute, Attempt: a}
			case 2:
				a.StatusCode = 404
				o = scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: a}
			}
			if len(items) == 7 {
				l.Worker = "someone-else"
			}
			items = append(items, scheduler.FinishItem{Lease: l, Outcome: o, Now: now})
		}
	}
	if len(items) != n {
		t.Fatalf("claimed %d of %d", len(items), n)
	}
	// Every shard's outcomes twice over, so that each shard has more than
	// finishBatch of them and is split over calls: the second copy is the
	// same outcome sent again, which changes nothing.
	all := append(append([]scheduler.FinishItem{}, items...), items...)
	before := scriptCalls(t, srv.Client())
	res := st.FinishMany(ctx, all)
	calls := scriptCalls(t, srv.Client()) - before
	wantCalls := (len(all) + finishBatch - 1) / finishBatch
	if calls != wantCalls {
		t.Errorf("%d script calls for %d outcomes over %d shards (%v), want %d", calls, len(all), shards, perShard, wantCalls)
	}
	for i, r := range res {
		want := i%n != 7
		if r.Err != nil || r.Held != want {
			t.Fatalf("result %d (%s) = %+v, want held %v", i, all[i].Lease.ID, r, want)
		}
	}
	for i, it := range items {
		got, err := st.Get(ctx, it.Lease.App, it.Lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := it.Outcome.Status
		if i == 7 {
			want = scheduler.StatusProcessing
		}
		if got.Status != want || (i != 7 && len(got.History) != 1) {
			t.Errorf("%s: %s with %d history lines, want %s with 1", it.Lease.ID, got.Status, len(got.History), want)
		}
	}
}

// scriptCalls is the number of EVALSHA and EVAL calls Redis has run.
func scriptCalls(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(line, cmd); ok {
				v, _, _ := strings.Cut(rest, ",")
				c, _ := strconv.Atoi(v)
				n += c
			}
		}
	}
	return n
}

// TestFinishManyOnClusterNode: a Redis in cluster mode reached with a plain
// client (a single endpoint in front of a cluster, a one-node cluster)
// refuses a script over several slots. The store sees cluster mode at
// start (INFO cluster) and records outcomes with a call per shard; should
// it not (perShard cleared here), the CROSSSLOT answer makes it send the
// refused calls again per shard and keep doing so. Every outcome is held.
func TestFinishManyOnClusterNode(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--cluster-enabled", "yes"))
	rdb := srv.Client()
	ctx := context.Background()
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := rdb.Do(ctx, "CLUSTER", "INFO").Text()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := New(ctx, rdb, Config{Namespace: testNS, Shards: 4, Retention: testRetention, WakeHorizon: testHorizon,
		EventLayout: testLayout})
	if err != nil {
		t.Fatal(err)
	}
	if !st.perShard.Load() {
		t.Fatal("a cluster-mode server was not taken as one")
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	finishAll := func(prefix string) {
		t.Helper()
		var evs []*scheduler.Event
		for i := range 12 {
			evs = append(evs, newEvent(prefix+strconv.Itoa(i), now, now))
		}
		if _, err := st.CreateMany(ctx, evs, now); err != nil {
			t.Fatal(err)
		}
		var items []scheduler.FinishItem
		shards := map[int]bool{}
		for sh := range st.Shards() {
			c, err := st.Claim(ctx, sh, testWorker, 100, visibility, now)
			if err != nil {
				t.Fatalf("claim shard %d: %v", sh, err)
			}
			for _, ev := range c.Events {
				shards[sh] = true
				items = append(items, scheduler.FinishItem{Lease: scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts},
					Outcome: scheduler.Outcome{Status: scheduler.StatusCompleted,
						Attempt: scheduler.Attempt{Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 200}}, Now: now})
			}
		}
		if len(items) != 12 || len(shards) < 2 {
			t.Fatalf("claimed %d events over %d shards, want 12 over several", len(items), len(shards))
		}
		for i, r := range st.FinishMany(ctx, items) {
			if r.Err != nil || !r.Held {
				t.Fatalf("%s: held %v, %v", items[i].Lease.ID, r.Held, r.Err)
			}
		}
	}
	finishAll("a")
	st.perShard.Store(false) // as if INFO had not told
	finishAll("b")
	if !st.perShard.Load() {
		t.Error("a CROSSSLOT answer did not make the store call per shard")
	}
}

// TestOutcomeFieldsAsTheScriptWritesThem: the compact fields FinishMany
// makes for a final outcome (outcomeFields) are, byte for byte, those
// finishmany.lua writes by itself when given none, for every kind of
// outcome: with and without a status code or an error, a long line and
// error (lengths of two bytes).
func TestOutcomeFieldsAsTheScriptWritesThem(t *testing.T) {
	compactOnly(t)
	long := strings.Repeat("e", 300)
	for _, o := range []scheduler.Outcome{
		{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{StatusCode: 200, DurationMS: 3}},
		{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{StatusCode: 400, Error: "bad request"}},
		{Status: scheduler.StatusServiceUnavailable, Attempt: scheduler.Attempt{Error: long}},
		{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{StatusCode: 410}},
	} {
		for _, be := range backends {
			t.Run(string(o.Status)+"/"+be.name, func(t *testing.T) { outcomeFieldsAgree(t, setupOutbox(t, be.real).bundle, o) })
		}
	}
}

// outcomeFieldsAgree is TestOutcomeFieldsAsTheScriptWritesThem for outcome o.
func outcomeFieldsAgree(t *testing.T, b *bundle, o scheduler.Outcome) {
	ctx := context.Background()
	for _, id := range []string{"made", "script"} {
		ev := newEvent(id, b.now, b.now)
		ev.URL = "https://example.com/hook" // the same value for both
		b.create(t, ev)
	}
	if c := b.claim(t, testWorker, 10, b.now); len(c.Events) != 2 {
		t.Fatalf("claimed %d", len(c.Events))
	}
	o.Attempt.Attempt = 1
	lease := func(id string) scheduler.Lease {
		return scheduler.Lease{App: testApp, ID: id, Worker: testWorker, Attempt: 1}
	}
	if r := b.store.FinishMany(ctx, []scheduler.FinishItem{{Lease: lease("made"), Outcome: o, Now: b.now}}); r[0].Err != nil || !r[0].Held {
		t.Fatalf("FinishMany = %+v", r[0])
	}
	// The same call as FinishMany's, without the fields: the script
	// writes them.
	m := member(testApp, "script")
	sh := b.store.k.shard(m)
	vals, err := finishArgs([]any{1}, lease("script"), o, b.now)
	if err != nil {
		t.Fatal(err)
	}
	if vals[len(vals)-2] == "" || vals[len(vals)-1] == "" {
		t.Fatalf("FinishMany made no fields for %s", o.Status)
	}
	vals[len(vals)-2], vals[len(vals)-1] = "", ""
	args := append([]any{1, b.store.k.evPrefix(sh), b.store.wakeChannel(sh), sh,
		b.store.cfg.WakeHorizon.Milliseconds(), b.store.scriptLayout(), b.store.packFlag()}, vals...)
	keys := []string{b.store.k.lease(sh), b.store.k.due(sh), b.store.k.out(sh)}
	if res, err := luascripts.FinishMany.Run(ctx, b.rdb, keys, args...).Int64Slice(); err != nil || len(res) != 1 || res[0] != 1 {
		t.Fatalf("finishmany.lua = %v, %v", res, err)
	}
	made, err := b.rdb.Get(ctx, b.store.k.ev(b.store.k.shard(member(testApp, "made")), member(testApp, "made"))).Result()
	if err != nil {
		t.Fatal(err)
	}
	script, err := b.rdb.Get(ctx, b.store.k.ev(sh, m)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if made != script {
		t.Fatalf("%s: FinishMany's fields wrote\n%q\nthe script's\n%q", o.Status, made, script)
	}
	if got := b.get(t, "made"); got.Status != o.Status || got.LastError != o.Attempt.Error || got.LastStatusCode != o.Attempt.StatusCode {
		t.Fatalf("%s: finished event = %+v", o.Status, got)
	}
}
