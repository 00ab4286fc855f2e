package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// testClusterGiveBack gives back a worker's lost claims on every shard of a
// cluster in one call (one script per shard, pipelined per master), the
// held ones staying, also after SCRIPT FLUSH on every master.
func testClusterGiveBack(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	for _, flush := range []bool{false, true} {
		e := newClusterEnv(t, c, "giveback")
		if flush {
			e = newClusterEnv(t, c, "giveback-flushed")
		}
		ids := e.idsOnEveryShard("gb", 2) // per shard: one held, one lost
		evs := make([]*scheduler.Event, 0, len(ids))
		for _, id := range ids {
			evs = append(evs, e.event(id, e.now))
		}
		if _, err := e.store.CreateMany(ctx, evs, e.now); err != nil {
			t.Fatal(err)
		}
		if claimed := e.claimAll("w1", time.Minute, e.now); len(claimed) != len(ids) {
			t.Fatalf("claimed %d of %d", len(claimed), len(ids))
		}
		holding := make([][]string, e.store.Shards())
		held := map[string]bool{}
		for _, id := range ids {
			sh := e.store.k.shard(member(testApp, id))
			if len(holding[sh]) == 0 {
				holding[sh] = append(holding[sh], member(testApp, id))
				held[id] = true
			}
		}
		if flush {
			flushScripts(t, c)
		}
		n, err := e.store.GiveBackOrphans(ctx, "w1", holding, time.Second, e.now.Add(2*time.Second))
		if err != nil || n != e.store.Shards() {
			t.Fatalf("flush=%v: GiveBackOrphans: %d, %v; want %d (one per shard)", flush, n, err, e.store.Shards())
		}
		again := e.claimAll("w2", time.Minute, e.now.Add(2*time.Second))
		for _, id := range ids {
			if held[id] {
				if st := e.status(id); st != scheduler.StatusProcessing || again[id] != nil {
					t.Errorf("flush=%v: held %s is %s (claimed again: %v), want PROCESSING by w1", flush, id, st, again[id] != nil)
				}
				continue
			}
			if ev := again[id]; ev == nil || ev.Attempts != 1 {
				t.Errorf("flush=%v: lost claim %s claimed again as %+v, want attempt 1", flush, id, ev)
			}
		}
	}
}
