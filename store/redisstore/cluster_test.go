package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
)

// The store on a real 3-master Redis Cluster: every operation must route
// each command and script to the master of its shard's slot, and none may
// span slots (CROSSSLOT). One cluster serves every subtest, each in its own
// namespace; the subtests run one after the other because the SCRIPT FLUSH
// one empties every master's script cache.

const clusterMasters = 3

// clusterEnv is one subtest's view of the shared cluster.
type clusterEnv struct {
	t     *testing.T
	c     *redistest.Cluster
	rdb   *redis.ClusterClient
	store *Store
	now   time.Time
}

// clusterStore opens a store in namespace ns on its own cluster client, as
// a separate process would.
func clusterStore(t *testing.T, c *redistest.Cluster, cfg Config) (*Store, *redis.ClusterClient) {
	t.Helper()
	rdb := c.NewClient()
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := New(ctx, rdb, cfg)
	if err != nil {
		t.Fatalf("New on the cluster: %v", err)
	}
	return st, rdb
}

func newClusterEnv(t *testing.T, c *redistest.Cluster, ns string) *clusterEnv {
	t.Helper()
	st, rdb := clusterStore(t, c, Config{Namespace: ns, Retention: time.Hour})
	return &clusterEnv{t: t, c: c, rdb: rdb, store: st, now: time.Now().Truncate(time.Millisecond)}
}

func (e *clusterEnv) event(id string, due time.Time) *scheduler.Event {
	return &scheduler.Event{App: testApp, ID: id, URL: "https://example.com/hook/" + id, Method: "POST",
		Body: []byte(`{"id":"` + id + `"}`), Headers: map[string]string{"X-Id": id},
		DueAt: due, Status: scheduler.StatusPending, CreatedAt: e.now, UpdatedAt: e.now}
}

// ownerOf returns the address of the master that holds a shard's keys.
func (e *clusterEnv) ownerOf(shard int) string {
	e.t.Helper()
	n, err := e.c.KeyOwner(context.Background(), e.store.k.due(shard))
	if err != nil {
		e.t.Fatal(err)
	}
	return n.Addr()
}

// idsOnEveryShard returns n event ids per shard, so a test touches every
// shard and so every master.
func (e *clusterEnv) idsOnEveryShard(prefix string, n int) []string {
	per := make([]int, e.store.Shards())
	var out []string
	for i := 0; len(out) < n*e.store.Shards(); i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if sh := e.store.k.shard(member(testApp, id)); per[sh] < n {
			per[sh]++
			out = append(out, id)
		}
	}
	return out
}

// claimAll claims due events from every shard for worker.
func (e *clusterEnv) claimAll(worker string, vis time.Duration, now time.Time) map[string]*scheduler.Event {
	e.t.Helper()
	got := map[string]*scheduler.Event{}
	for sh := range e.store.Shards() {
		c, err := e.store.Claim(context.Background(), sh, worker, 1000, vis, now)
		if err != nil {
			e.t.Fatalf("Claim shard %d on %s: %v", sh, e.ownerOf(sh), err)
		}
		for _, ev := range c.Events {
			got[ev.ID] = ev
		}
	}
	return got
}

func (e *clusterEnv) status(id string) scheduler.Status {
	e.t.Helper()
	ev, err := e.store.Get(context.Background(), testApp, id)
	if err != nil {
		e.t.Fatalf("Get %s: %v", id, err)
	}
	return ev.Status
}

// scriptsOnEveryMaster reports, per master, whether every script is cached.
func scriptsOnEveryMaster(t *testing.T, c *redistest.Cluster) map[string]bool {
	t.Helper()
	hashes := make([]string, len(luascripts.All))
	for i, sc := range luascripts.All {
		hashes[i] = sc.Hash()
	}
	out := map[string]bool{}
	for _, n := range c.Nodes() {
		ok, err := n.Client().ScriptExists(context.Background(), hashes...).Result()
		if err != nil {
			t.Fatalf("SCRIPT EXISTS on %s: %v", n.Addr(), err)
		}
		out[n.Addr()] = !slices.Contains(ok, false)
	}
	return out
}

func flushScripts(t *testing.T, c *redistest.Cluster) {
	t.Helper()
	for _, n := range c.Nodes() {
		if err := n.Client().ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH on %s: %v", n.Addr(), err)
		}
	}
	for addr, ok := range scriptsOnEveryMaster(t, c) {
		if ok {
			t.Fatalf("scripts still cached on %s after SCRIPT FLUSH", addr)
		}
	}
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, clusterMasters)
	t.Run("NewAndLoadScripts", func(t *testing.T) { testClusterNew(t, c) })
	t.Run("ShardsSpreadOverMasters", func(t *testing.T) { testClusterSpread(t, c) })
	t.Run("CreateGetCancel", func(t *testing.T) { testClusterCreate(t, c) })
	t.Run("ClaimFinishExtendReapRequeue", func(t *testing.T) { testClusterLifecycle(t, c) })
	t.Run("WorkersHeartbeatRecover", func(t *testing.T) { testClusterWorkers(t, c) })
	t.Run("Wakeups", func(t *testing.T) { testClusterWakeups(t, c) })
	t.Run("Outbox", func(t *testing.T) { testClusterOutbox(t, c) })
	t.Run("WithLock", func(t *testing.T) { testClusterLock(t, c) })
	t.Run("Apps", func(t *testing.T) { testClusterApps(t, c) })
	t.Run("Subscriptions", func(t *testing.T) { testClusterSubscriptions(t, c) })
	t.Run("ScriptFlush", func(t *testing.T) { testClusterScriptFlush(t, c) })
	t.Run("GiveBackOrphans", func(t *testing.T) { testClusterGiveBack(t, c) })
	t.Run("ShardPlacement", func(t *testing.T) { testClusterPlacement(t, c) })
}

func testClusterNew(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	flushScripts(t, c)
	st, rdb := clusterStore(t, c, Config{Namespace: "new"})
	if st.Shards() != DefaultShards {
		t.Fatalf("Shards() = %d, want %d", st.Shards(), DefaultShards)
	}
	if got, err := rdb.HGet(ctx, "new:meta", "shards").Result(); err != nil || got != "16" {
		t.Fatalf("new:meta shards = %q, %v; want 16", got, err)
	}
	// New loaded every script on every master, not only on one.
	for addr, ok := range scriptsOnEveryMaster(t, c) {
		if !ok {
			t.Errorf("after New, master %s lacks some of the scripts", addr)
		}
	}
	// A second process adopts the recorded count and refuses another one.
	if st2, _ := clusterStore(t, c, Config{Namespace: "new"}); st2.Shards() != DefaultShards {
		t.Errorf("second New: %d shards", st2.Shards())
	}
	if _, err := New(ctx, c.Client(), Config{Namespace: "new", Shards: 8}); err == nil {
		t.Errorf("New with 8 shards on a 16-shard namespace: no error")
	}
	if err := st.Ping(ctx); err != nil {
		t.Errorf("Ping on the cluster: %v", err)
	}
	if nodes, err := st.Nodes(ctx); err != nil || len(nodes) != clusterMasters {
		t.Errorf("Nodes() = %+v, %v; want the %d masters", nodes, err, clusterMasters)
	} else if err := CheckNoEviction(nodes); err != nil {
		t.Errorf("CheckNoEviction on the test cluster: %v", err)
	}
}

// testClusterSpread: with the default namespace and 16 shards, the shards'
// slots fall on every master, by the cluster's own CLUSTER KEYSLOT and
// CLUSTER SLOTS and by the client's slot map, and the data follows.
func testClusterSpread(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	st, rdb := clusterStore(t, c, Config{})
	if st.Namespace() != DefaultNamespace || st.Shards() != DefaultShards {
		t.Fatalf("default store: namespace %q, %d shards", st.Namespace(), st.Shards())
	}
	perMaster := map[string][]int{}
	for sh := range st.Shards() {
		var slot int64
		for i, key := range []string{st.k.due(sh), st.k.lease(sh), st.k.out(sh), st.k.proc(sh, "w"), st.k.ev(sh, "a/b")} {
			s, err := c.Nodes()[0].Client().ClusterKeySlot(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				slot = s
			} else if s != slot {
				t.Fatalf("shard %d: key %s in slot %d, %s in slot %d", sh, st.k.due(sh), slot, key, s)
			}
		}
		owner, err := c.SlotOwner(ctx, int(slot))
		if err != nil {
			t.Fatal(err)
		}
		cl, err := rdb.MasterForKey(ctx, st.k.due(sh))
		if err != nil {
			t.Fatal(err)
		}
		if cl.Options().Addr != owner.Addr() {
			t.Errorf("shard %d (slot %d): client routes to %s, cluster says %s", sh, slot, cl.Options().Addr, owner.Addr())
		}
		perMaster[owner.Addr()] = append(perMaster[owner.Addr()], sh)
	}
	for _, addr := range c.Addrs() {
		t.Logf("master %s holds %d of %d shards: %v", addr, len(perMaster[addr]), st.Shards(), perMaster[addr])
		if len(perMaster[addr]) == 0 {
			t.Errorf("master %s holds no shard of namespace %q", addr, st.Namespace())
		}
	}

	// The events follow: each master stores the events of its shards.
	e := &clusterEnv{t: t, c: c, rdb: rdb, store: st, now: time.Now().Truncate(time.Millisecond)}
	var evs []*scheduler.Event
	for _, id := range e.idsOnEveryShard("spread", 5) {
		evs = append(evs, e.event(id, e.now.Add(time.Hour)))
	}
	if _, err := st.CreateMany(ctx, evs, e.now); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		keys, err := n.Client().Keys(ctx, DefaultNamespace+":{*}:ev:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := 5 * len(perMaster[n.Addr()]); len(keys) != want {
			t.Errorf("master %s stores %d event hashes, want %d (5 per shard it owns)", n.Addr(), len(keys), want)
		}
	}
}

func testClusterCreate(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "create")
	due := e.now.Add(time.Hour)

	// Create, one by one, on every shard.
	single := e.idsOnEveryShard("one", 2)
	for _, id := range single {
		if existing, err := e.store.Create(ctx, e.event(id, due), e.now); err != nil || existing != nil {
			t.Fatalf("Create %s (shard %d on %s): %v, %v", id, e.store.k.shard(member(testApp, id)),
				e.ownerOf(e.store.k.shard(member(testApp, id))), existing, err)
		}
	}
	// A duplicate identity comes back as the existing event.
	existing, err := e.store.Create(ctx, e.event(single[0], due.Add(time.Minute)), e.now)
	if err != nil || existing == nil || !existing.DueAt.Equal(due) {
		t.Fatalf("duplicate Create = %+v, %v; want the existing event due %v", existing, err, due)
	}

	// CreateMany: one pipeline, split by go-redis per master.
	many := e.idsOnEveryShard("many", 30)
	evs := make([]*scheduler.Event, 0, len(many)+1)
	for _, id := range many {
		evs = append(evs, e.event(id, due))
	}
	evs = append(evs, e.event(single[1], due)) // taken
	res, err := e.store.CreateMany(ctx, evs, e.now)
	if err != nil {
		t.Fatalf("CreateMany of %d: %v", len(evs), err)
	}
	for i, r := range res {
		taken := i == len(res)-1
		if r.Err != nil || (r.Existing != nil) != taken {
			t.Fatalf("CreateMany result %d (%s): %+v, want taken=%v", i, evs[i].ID, r, taken)
		}
	}

	// Get and GetMany read from every master.
	for _, id := range single {
		ev, err := e.store.Get(ctx, testApp, id)
		if err != nil || ev.Status != scheduler.StatusPending || string(ev.Body) != `{"id":"`+id+`"}` || ev.Headers["X-Id"] != id {
			t.Fatalf("Get %s = %+v, %v", id, ev, err)
		}
	}
	idents := []scheduler.Ident{{App: testApp, ID: "missing"}}
	for _, id := range many {
		idents = append(idents, scheduler.Ident{App: testApp, ID: id})
	}
	got, err := e.store.GetMany(ctx, idents)
	if err != nil || len(got) != len(idents) {
		t.Fatalf("GetMany: %d events, %v", len(got), err)
	}
	if got[0] != nil {
		t.Errorf("GetMany of a missing identity: %+v, want nil", got[0])
	}
	for i, ev := range got[1:] {
		if ev == nil || ev.ID != many[i] || ev.Status != scheduler.StatusPending || !ev.DueAt.Equal(due) {
			t.Fatalf("GetMany[%d] = %+v, want %s PENDING", i+1, ev, many[i])
		}
	}
	if _, err := e.store.Get(ctx, testApp, "missing"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}

	// Cancel on every shard; twice is a conflict.
	for _, id := range single {
		if _, err := e.store.Cancel(ctx, testApp, id, e.now); err != nil {
			t.Fatalf("Cancel %s: %v", id, err)
		}
		if st := e.status(id); st != scheduler.StatusCancelled {
			t.Fatalf("%s after Cancel: %s", id, st)
		}
	}
	var se *scheduler.StatusError
	if _, err := e.store.Cancel(ctx, testApp, single[0], e.now); !errors.As(err, &se) || se.Status != scheduler.StatusCancelled {
		t.Errorf("second Cancel: %v, want a StatusError CANCELLED", err)
	}
	if _, err := e.store.Cancel(ctx, testApp, "missing", e.now); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Cancel missing: %v, want ErrNotFound", err)
	}

	// Live counts every shard's sets.
	live, err := e.store.Live(ctx, e.now.Add(2*time.Hour))
	if err != nil || live.Pending != int64(len(many)) || live.DueSoon != int64(len(many)) || live.Processing != 0 {
		t.Errorf("Live = %+v, %v; want %d pending, all due within 2h", live, err, len(many))
	}
}

// testClusterLifecycle claims from every shard, then finishes with each
// outcome, extends, reaps and requeues, on events spread over the masters.
func testClusterLifecycle(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "life")
	ids := e.idsOnEveryShard("ev", 5) // 5 per shard: ok, retry, fail, slow, lost
	var evs []*scheduler.Event
	for _, id := range ids {
		evs = append(evs, e.event(id, e.now))
	}
	if _, err := e.store.CreateMany(ctx, evs, e.now); err != nil {
		t.Fatal(err)
	}
	const vis = time.Minute
	claimed := e.claimAll("w1", vis, e.now)
	if len(claimed) != len(ids) {
		t.Fatalf("claimed %d of %d due events", len(claimed), len(ids))
	}
	live, err := e.store.Live(ctx, e.now)
	if err != nil || live.Processing != int64(len(ids)) || live.Pending != 0 {
		t.Fatalf("Live after claiming = %+v, %v", live, err)
	}
	if again := e.claimAll("w2", vis, e.now); len(again) != 0 {
		t.Fatalf("a second worker claimed %d events already claimed", len(again))
	}

	lease := func(id string) scheduler.Lease {
		return scheduler.Lease{App: testApp, ID: id, Worker: "w1", Attempt: claimed[id].Attempts}
	}
	at := e.now.Add(time.Second)
	outcomes := []scheduler.Outcome{
		{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 200}},
		{Status: scheduler.StatusPending, Backoff: time.Hour, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 503}},
		{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 404}},
	}
	want := map[string]scheduler.Status{}
	for i, id := range ids {
		switch k := i % 5; k {
		case 0, 1, 2:
			held, err := e.store.Finish(ctx, lease(id), outcomes[k], at)
			if err != nil || !held {
				t.Fatalf("Finish %s (%s): held %v, %v", id, outcomes[k].Status, held, err)
			}
			want[id] = outcomes[k].Status
		case 3:
			held, err := e.store.Extend(ctx, lease(id), 2*vis, at)
			if err != nil || !held {
				t.Fatalf("Extend %s: held %v, %v", id, held, err)
			}
			want[id] = scheduler.StatusProcessing
		case 4:
			want[id] = scheduler.StatusPending // reaped below
		}
	}
	// A stale lease is refused on every master.
	if held, err := e.store.Finish(ctx, scheduler.Lease{App: testApp, ID: ids[0], Worker: "w2", Attempt: 1}, outcomes[0], at); err != nil || held {
		t.Errorf("Finish with another worker's lease: held %v, %v", held, err)
	}

	// The unextended leases expire: the reaper of each shard takes back the
	// lost events (and only them; the extended ones hold on).
	reaped := 0
	for sh := range e.store.Shards() {
		n, err := e.store.Reap(ctx, sh, 100, 5, e.now.Add(vis+time.Second))
		if err != nil {
			t.Fatalf("Reap shard %d on %s: %v", sh, e.ownerOf(sh), err)
		}
		reaped += n
	}
	if reaped != e.store.Shards() {
		t.Errorf("reaped %d events, want %d (one lost per shard)", reaped, e.store.Shards())
	}
	for id, st := range want {
		if got := e.status(id); got != st {
			t.Errorf("%s: status %s, want %s", id, got, st)
		}
	}

	// Requeue a FAILED event on every shard; a COMPLETED one refuses.
	for i, id := range ids {
		if i%5 != 2 {
			continue
		}
		if _, err := e.store.Requeue(ctx, testApp, id, []scheduler.Status{scheduler.StatusFailed}, true, at); err != nil {
			t.Fatalf("Requeue %s: %v", id, err)
		}
		if ev, _ := e.store.Get(ctx, testApp, id); ev.Status != scheduler.StatusPending || ev.Attempts != 0 {
			t.Fatalf("%s after Requeue: %s, %d attempts", id, ev.Status, ev.Attempts)
		}
	}
	var se *scheduler.StatusError
	if _, err := e.store.Requeue(ctx, testApp, ids[0], []scheduler.Status{scheduler.StatusFailed}, true, at); !errors.As(err, &se) {
		t.Errorf("Requeue COMPLETED: %v, want a StatusError", err)
	}
	// Requeued (due now) and reaped (due at the reap) events are claimable again.
	again := e.claimAll("w3", vis, e.now.Add(vis+2*time.Second))
	if len(again) != 2*e.store.Shards() {
		t.Errorf("claimed %d requeued and reaped events, want %d", len(again), 2*e.store.Shards())
	}
}

func testClusterWorkers(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "workers")
	old := e.now.Add(-time.Minute)
	for _, w := range []struct {
		id string
		at time.Time
	}{{"dead", old}, {"alive", e.now}} {
		if err := e.store.Heartbeat(ctx, scheduler.WorkerInfo{ID: w.id, Heartbeat: w.at, InFlight: 3}, w.at); err != nil {
			t.Fatalf("Heartbeat %s: %v", w.id, err)
		}
	}
	ws, err := e.store.Workers(ctx, e.now.Add(-10*time.Second))
	if err != nil || len(ws) != 1 || ws[0].ID != "alive" || ws[0].InFlight != 3 {
		t.Fatalf("Workers = %+v, %v; want alive with its info", ws, err)
	}
	dead, err := e.store.DeadWorkers(ctx, 15*time.Second, e.now)
	if err != nil || !slices.Equal(dead, []string{"dead"}) {
		t.Fatalf("DeadWorkers = %q, %v; want [dead]", dead, err)
	}

	// The dead worker holds leases on every shard: recovering it ends them
	// all, across the masters, and the reapers give the events back.
	var evs []*scheduler.Event
	ids := e.idsOnEveryShard("held", 2)
	for _, id := range ids {
		evs = append(evs, e.event(id, e.now))
	}
	if _, err := e.store.CreateMany(ctx, evs, e.now); err != nil {
		t.Fatal(err)
	}
	if got := e.claimAll("dead", time.Hour, e.now); len(got) != len(ids) {
		t.Fatalf("dead worker claimed %d of %d", len(got), len(ids))
	}
	n, err := e.store.RecoverWorker(ctx, "dead", 15*time.Second, e.now)
	if err != nil || n != len(ids) {
		t.Fatalf("RecoverWorker = %d, %v; want %d leases ended", n, err, len(ids))
	}
	reaped := 0
	for sh := range e.store.Shards() {
		n, err := e.store.Reap(ctx, sh, 100, 5, e.now)
		if err != nil {
			t.Fatal(err)
		}
		reaped += n
	}
	if reaped != len(ids) {
		t.Errorf("reaped %d after RecoverWorker, want %d", reaped, len(ids))
	}
	if ws, err := e.store.Workers(ctx, time.Time{}); err != nil || len(ws) != 1 || ws[0].ID != "alive" {
		t.Errorf("Workers after RecoverWorker = %+v, %v; want only alive", ws, err)
	}
	if err := e.store.RemoveWorker(ctx, "alive"); err != nil {
		t.Fatal(err)
	}
	if ws, err := e.store.Workers(ctx, time.Time{}); err != nil || len(ws) != 0 {
		t.Errorf("Workers after RemoveWorker = %+v, %v", ws, err)
	}
}

// testClusterWakeups: a create on a shard of any master wakes a worker
// subscribed through another cluster client: the PUBLISH inside the script
// runs on the shard's master, and the cluster bus carries it to the
// subscriber's node (the master of the channel's slot).
func testClusterWakeups(t *testing.T, c *redistest.Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newClusterEnv(t, c, "wake")
	sub, _ := clusterStore(t, c, Config{Namespace: "wake"})
	wake := sub.Wakeups(ctx).C()
	select {
	case <-wake: // the subscription is confirmed
	case <-time.After(10 * time.Second):
		t.Fatal("no first wake-up: the subscription was never confirmed")
	}
	// Redis 7: one channel per shard, sharded pub/sub (SPUBLISH on the
	// shard's master only), never a PUBLISH that every master carries.
	if !e.store.shardedWake || !sub.shardedWake {
		t.Fatal("a Redis 7 cluster without sharded wake-ups")
	}
	var masters []*redis.Client
	for _, n := range c.Nodes() {
		masters = append(masters, n.Client())
	}
	for _, m := range masters {
		if err := m.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// One event per master, each on an empty shard of that master, due now.
	done := map[string]bool{}
	for i := 0; len(done) < clusterMasters; i++ {
		id := fmt.Sprintf("wake-%d", i)
		sh := e.store.k.shard(member(testApp, id))
		owner := e.ownerOf(sh)
		if done[owner] {
			continue
		}
		done[owner] = true
		// Nothing else is pending: any wake-up seen now is from this create.
		select {
		case <-wake:
		default:
		}
		now := time.Now()
		if _, err := e.store.Create(ctx, e.event(id, now), time.Time{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake:
			t.Logf("create on shard %d (master %s) woke the subscriber after %s", sh, owner, time.Since(now))
		case <-time.After(5 * time.Second):
			t.Fatalf("create on shard %d (master %s) woke nobody within 5s", sh, owner)
		}
	}
	spublished := int64(0)
	for _, m := range masters {
		pub, spub := commandCalls(t, m, "publish"), commandCalls(t, m, "spublish")
		if pub != 0 {
			t.Errorf("master %s ran PUBLISH %d times: wake-ups go to every master", m.Options().Addr, pub)
		}
		spublished += spub
	}
	if spublished < clusterMasters {
		t.Errorf("%d SPUBLISH calls in all, want one per create (%d)", spublished, clusterMasters)
	}
}

// commandCalls is how many times server rdb ran command cmd since its last
// CONFIG RESETSTAT (INFO commandstats).
func commandCalls(t *testing.T, rdb *redis.Client, cmd string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
	}
	return 0
}

func testClusterOutbox(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "outbox")
	ids := e.idsOnEveryShard("ob", 2)
	var evs []*scheduler.Event
	for _, id := range ids {
		evs = append(evs, e.event(id, e.now))
	}
	if _, err := e.store.CreateMany(ctx, evs, e.now); err != nil {
		t.Fatal(err)
	}
	claimed := e.claimAll("w1", time.Minute, e.now)
	at := e.now.Add(time.Second)
	// Every shard's outcomes in one FinishMany: a call per shard on a
	// cluster (a script's keys share a slot).
	var items []scheduler.FinishItem
	for _, id := range ids {
		ok := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 200}}
		items = append(items, scheduler.FinishItem{Lease: scheduler.Lease{App: testApp, ID: id, Worker: "w1", Attempt: claimed[id].Attempts},
			Outcome: ok, Now: at})
	}
	for i, r := range e.store.FinishMany(ctx, items) {
		if r.Err != nil || !r.Held {
			t.Fatalf("FinishMany %s: %v, %v", items[i].Lease.ID, r.Held, r.Err)
		}
	}
	// Each event left a create and a final entry in its shard's outbox;
	// packed, each shard's two creates are one entry, as are its finals.
	want := int64(2 * len(ids))
	if e.store.packed() {
		want = int64(2 * e.store.Shards())
	}
	n, oldest, err := e.store.OutboxLag(ctx)
	if err != nil || n != want || oldest.IsZero() {
		t.Fatalf("OutboxLag = %d, %v, %v; want %d entries", n, oldest, err, want)
	}

	// Consumer a reads every shard (the first read creates the group);
	// consumer b takes a's entries over; the acks start the retention.
	for sh := range e.store.Shards() {
		recs, err := e.store.ReadOutbox(ctx, sh, "a", false, 100)
		if err != nil {
			t.Fatalf("ReadOutbox shard %d on %s: %v", sh, e.ownerOf(sh), err)
		}
		if len(recs) != 4 || recs[0].Kind != scheduler.RecordCreate || recs[3].Kind != scheduler.RecordFinal {
			t.Fatalf("shard %d outbox: %+v, want 2 creates and 2 finals", sh, recs)
		}
		if more, err := e.store.ReadOutbox(ctx, sh, "a", false, 100); err != nil || len(more) != 0 {
			t.Fatalf("second read of shard %d: %d new entries, %v", sh, len(more), err)
		}
		pending, err := e.store.ReadOutbox(ctx, sh, "a", true, 100)
		if err != nil || len(pending) != 4 {
			t.Fatalf("pending of a on shard %d: %d, %v", sh, len(pending), err)
		}
		taken, err := e.store.ClaimOutbox(ctx, sh, "b", 0, 100)
		if err != nil || len(taken) != 4 {
			t.Fatalf("ClaimOutbox shard %d: %d, %v", sh, len(taken), err)
		}
		if err := e.store.AckOutbox(ctx, sh, taken); err != nil {
			t.Fatalf("AckOutbox shard %d on %s: %v", sh, e.ownerOf(sh), err)
		}
	}
	n, _, err = e.store.OutboxLag(ctx)
	if err != nil || n != 0 {
		t.Fatalf("OutboxLag after acking every shard = %d, %v", n, err)
	}
	// archived.lua started the retention of every finished event's hash.
	for _, id := range ids {
		m := member(testApp, id)
		exp, err := e.rdb.PExpireTime(ctx, e.store.k.ev(e.store.k.shard(m), m)).Result()
		if want := at.Add(time.Hour).UnixMilli(); err != nil || exp.Milliseconds() != want {
			t.Errorf("%s: PEXPIRETIME %d, %v; want %d, the finish time plus the 1h retention", id, exp.Milliseconds(), err, want)
		}
	}
}

func testClusterLock(t *testing.T, c *redistest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, _ := clusterStore(t, c, Config{Namespace: "lock"})
	b, _ := clusterStore(t, c, Config{Namespace: "lock"})
	owner, err := c.KeyOwner(ctx, "lock:lock:migrate")
	if err != nil {
		t.Fatal(err)
	}
	var holders, most, runs atomic.Int32
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, st := range []*Store{a, b} {
		wg.Go(func() {
			for range 4 {
				errs <- st.WithLock(ctx, "migrate", 2*time.Second, func(lctx context.Context) error {
					n := holders.Add(1)
					defer holders.Add(-1)
					if n > most.Load() {
						most.Store(n)
					}
					runs.Add(1)
					if ex, err := owner.Client().Exists(ctx, "lock:lock:migrate").Result(); err != nil || ex != 1 {
						return fmt.Errorf("lock key not on its master %s while held: %d, %v", owner.Addr(), ex, err)
					}
					// The fencing token (a key in another slot) holds while the lock does.
					f, ok := scheduler.FenceFrom(lctx)
					if !ok {
						return fmt.Errorf("no fence in the lock's context")
					}
					if err := f.Check(lctx); err != nil {
						return fmt.Errorf("fence check while holding the lock: %w", err)
					}
					mu.Lock()
					tokens = append(tokens, f.Token())
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("WithLock: %v", err)
		}
	}
	if runs.Load() != 8 || most.Load() != 1 {
		t.Fatalf("%d runs, at most %d holders at once; want 8 runs, 1 holder", runs.Load(), most.Load())
	}
	slices.Sort(tokens)
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(tokens, want) {
		t.Errorf("fencing tokens %v, want %v: one new token per holding", tokens, want)
	}
}

// testClusterApps: applications and their key index live in one hash, so
// the scripts that keep them in step run on one master.
func testClusterApps(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "apps")
	shop := testAppRecord("shop", e.now, "aaaa1111")
	if err := e.store.CreateApp(ctx, shop); err != nil {
		t.Fatalf("CreateApp on the cluster: %v", err)
	}
	if err := e.store.CreateApp(ctx, testAppRecord("shop", e.now, "cccc3333")); !errors.Is(err, tenant.ErrAppExists) {
		t.Fatalf("second CreateApp: %v, want ErrAppExists", err)
	}
	if err := e.store.CreateApp(ctx, testAppRecord("billing", e.now, "dddd4444")); err != nil {
		t.Fatal(err)
	}
	if a, err := e.store.AppByKeyHash(ctx, "aaaa1111"); err != nil || a.Name != "shop" {
		t.Fatalf("AppByKeyHash = %+v, %v", a, err)
	}
	// Rotate: the new key is indexed, the old one is gone.
	shop.Keys = []tenant.KeyHash{{Hash: "bbbb2222", Hint: "csk_…bbbb", CreatedAt: e.now}}
	if err := e.store.UpdateApp(ctx, shop); err != nil || shop.Revision != 2 {
		t.Fatalf("UpdateApp: %v, revision %d", err, shop.Revision)
	}
	if _, err := e.store.AppByKeyHash(ctx, "aaaa1111"); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Errorf("old key after rotation: %v, want ErrAppNotFound", err)
	}
	if a, err := e.store.GetApp(ctx, "shop"); err != nil || a.Revision != 2 || a.Keys[0].Hash != "bbbb2222" {
		t.Errorf("GetApp after rotation = %+v, %v", a, err)
	}
	list, err := e.store.ListApps(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "billing" || list[1].Name != "shop" {
		t.Errorf("ListApps = %v, %v", list, err)
	}
}

// testClusterScriptFlush empties every master's script cache while a store
// is in use: single calls fall back to EVAL, CreateMany's pipeline reloads
// the scripts on every master and goes on.
func testClusterScriptFlush(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "flush")
	ids := e.idsOnEveryShard("f", 2)
	half := len(ids) / 2

	flushScripts(t, c)
	for _, id := range ids[:half] {
		if _, err := e.store.Create(ctx, e.event(id, e.now), e.now); err != nil {
			t.Fatalf("Create after SCRIPT FLUSH: %v", err)
		}
	}
	flushScripts(t, c)
	var evs []*scheduler.Event
	for _, id := range ids[half:] {
		evs = append(evs, e.event(id, e.now))
	}
	if _, err := e.store.CreateMany(ctx, evs, e.now); err != nil {
		t.Fatalf("CreateMany after SCRIPT FLUSH: %v", err)
	}
	for addr, ok := range scriptsOnEveryMaster(t, c) {
		if !ok {
			t.Errorf("CreateMany's NOSCRIPT recovery left master %s without the scripts", addr)
		}
	}

	flushScripts(t, c)
	claimed := e.claimAll("w1", time.Minute, e.now)
	if len(claimed) != len(ids) {
		t.Fatalf("claimed %d of %d after SCRIPT FLUSH", len(claimed), len(ids))
	}
	flushScripts(t, c)
	at := e.now.Add(time.Second)
	for _, id := range ids {
		ok := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), StatusCode: 200}}
		if held, err := e.store.Finish(ctx, scheduler.Lease{App: testApp, ID: id, Worker: "w1", Attempt: claimed[id].Attempts}, ok, at); err != nil || !held {
			t.Fatalf("Finish after SCRIPT FLUSH: %v, %v", held, err)
		}
	}
	flushScripts(t, c)
	for sh := range e.store.Shards() {
		if _, err := e.store.Reap(ctx, sh, 10, 5, at); err != nil {
			t.Fatalf("Reap after SCRIPT FLUSH: %v", err)
		}
		recs, err := e.store.ReadOutbox(ctx, sh, "a", false, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.AckOutbox(ctx, sh, recs); err != nil {
			t.Fatalf("AckOutbox after SCRIPT FLUSH: %v", err)
		}
	}
	if err := e.store.Ping(ctx); err != nil {
		t.Errorf("Ping after SCRIPT FLUSH: %v", err)
	}
	if err := e.store.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	for addr, ok := range scriptsOnEveryMaster(t, c) {
		if !ok {
			t.Errorf("LoadScripts left master %s without the scripts", addr)
		}
	}
	for _, id := range ids {
		if st := e.status(id); st != scheduler.StatusCompleted {
			t.Errorf("%s: %s, want COMPLETED", id, st)
		}
	}
}
