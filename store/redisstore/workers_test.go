package redisstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

func (b *bundle) beat(t *testing.T, id string, at time.Time) {
	t.Helper()
	if err := b.store.Heartbeat(context.Background(), scheduler.WorkerInfo{ID: id, Heartbeat: at}, at); err != nil {
		t.Fatalf("Heartbeat %s: %v", id, err)
	}
}

func (b *bundle) dead(t *testing.T, deadAfter time.Duration, now time.Time) []string {
	t.Helper()
	ids, err := b.store.DeadWorkers(context.Background(), deadAfter, now)
	if err != nil {
		t.Fatalf("DeadWorkers: %v", err)
	}
	return ids
}

func TestHeartbeatAndWorkers(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.beat(t, "w-old", b.at(-time.Minute))
	b.beat(t, "w-new", b.now)
	got, err := b.store.Workers(ctx, b.at(-10*time.Second))
	if err != nil || len(got) != 1 || got[0].ID != "w-new" || !got[0].Heartbeat.Equal(b.now) {
		t.Fatalf("Workers = %+v, %v; want only w-new with its heartbeat", got, err)
	}
	if s, ok := zscore(t, b.mr, testNS+":workers", "w-new"); !ok || int64(s) != b.now.UnixMilli() {
		t.Errorf("workers zset score of w-new = %v, %v; want the heartbeat time %d", s, ok, b.now.UnixMilli())
	}
	if err := b.store.RemoveWorker(ctx, "w-new"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.store.Workers(ctx, b.at(-time.Hour)); len(got) != 1 || got[0].ID != "w-old" {
		t.Errorf("after RemoveWorker(w-new): %+v, want only w-old", got)
	}
}

func TestDeadWorkers(t *testing.T) {
	b := setup(t)
	b.beat(t, "w-a", b.at(-20*time.Second))
	b.beat(t, "w-b", b.at(-16*time.Second))
	b.beat(t, "w-c", b.at(-15*time.Second)) // exactly at the threshold: not yet dead
	b.beat(t, "w-d", b.now)
	if got := b.dead(t, 15*time.Second, b.now); !slices.Equal(got, []string{"w-a", "w-b"}) {
		t.Errorf("DeadWorkers = %q, want [w-a w-b] (oldest first)", got)
	}
	if got := b.dead(t, time.Minute, b.now); len(got) != 0 {
		t.Errorf("DeadWorkers(1m) = %q, want none", got)
	}
}

// TestRecoverWorker: the dead worker's leases end now in every shard and
// the next reap gives its events back; another worker's leases and events
// are untouched; the dead worker is forgotten.
func TestRecoverWorker(t *testing.T) {
	b := setup(t, Config{Namespace: testNS, Shards: 4, Retention: testRetention, WakeHorizon: testHorizon})
	ctx := context.Background()
	var mine, theirs []scheduler.Lease
	for i, id := range []string{"e1", "e2", "e3", "e4", "e5", "e6"} {
		b.create(t, newEvent(id, b.now, b.now))
		worker := "dead"
		if i%3 == 2 {
			worker = "alive"
		}
		sh := b.store.k.shard(testApp + "/" + id)
		c, err := b.store.Claim(ctx, sh, worker, 1, time.Hour, b.now)
		if err != nil || len(c.Events) != 1 {
			t.Fatalf("claim %s: %+v, %v", id, c, err)
		}
		l := scheduler.Lease{App: testApp, ID: id, Worker: worker, Attempt: c.Events[0].Attempts}
		if worker == "dead" {
			mine = append(mine, l)
		} else {
			theirs = append(theirs, l)
		}
	}
	b.beat(t, "dead", b.at(-time.Minute))
	b.beat(t, "alive", b.now)
	later := b.at(time.Second)
	// The processing list a dead worker of an earlier release left.
	legacy := b.store.k.proc(0, "dead")
	if err := b.rdb.RPush(ctx, legacy, testApp+"/old").Err(); err != nil {
		t.Fatal(err)
	}
	records := func(worker string) int {
		n := 0
		for sh := range 4 {
			n += int(b.rdb.HLen(ctx, b.store.k.claims(sh, worker)).Val())
		}
		return n
	}
	if records("dead") != len(mine) || records("alive") != len(theirs) {
		t.Fatalf("claim records: dead %d, alive %d; want %d, %d", records("dead"), records("alive"), len(mine), len(theirs))
	}

	n, err := b.store.RecoverWorker(ctx, "dead", 15*time.Second, later)
	if err != nil || n != len(mine) {
		t.Fatalf("RecoverWorker = %d, %v; want %d leases ended", n, err, len(mine))
	}
	if got := b.dead(t, 15*time.Second, later); len(got) != 0 {
		t.Errorf("after RecoverWorker the dead worker is still listed: %q", got)
	}
	if records("dead") != 0 || b.rdb.Exists(ctx, legacy).Val() != 0 {
		t.Errorf("the dead worker's claim records (%d) or processing list (exists: %d) are left",
			records("dead"), b.rdb.Exists(ctx, legacy).Val())
	}
	if records("alive") != len(theirs) {
		t.Errorf("the live worker's claim records: %d, want %d", records("alive"), len(theirs))
	}
	reaped := 0
	for sh := range 4 {
		r, err := b.store.Reap(ctx, sh, 100, 5, later)
		if err != nil {
			t.Fatal(err)
		}
		reaped += r
	}
	if reaped != len(mine) {
		t.Errorf("reap after RecoverWorker recovered %d events, want the dead worker's %d", reaped, len(mine))
	}
	for _, l := range mine {
		if ev := b.get(t, l.ID); ev.Status != scheduler.StatusPending {
			t.Errorf("%s of the dead worker is %s after the reap, want PENDING", l.ID, ev.Status)
		}
		// The dead worker, should it come back, cannot finish it.
		if held, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted}, later); err != nil || held {
			t.Errorf("late Finish of %s by the recovered worker = %v, %v; want refused", l.ID, held, err)
		}
	}
	for _, l := range theirs {
		if ev := b.get(t, l.ID); ev.Status != scheduler.StatusProcessing {
			t.Errorf("%s of the live worker is %s, want PROCESSING", l.ID, ev.Status)
		}
		if held, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted}, later); err != nil || !held {
			t.Errorf("Finish of %s by the live worker = %v, %v; want held", l.ID, held, err)
		}
	}
}

// TestRecoverWorkerThatBeatAgain: a worker that beat again between the
// check and the recovery keeps its entry (its leases were ended all the same).
func TestRecoverWorkerThatBeatAgain(t *testing.T) {
	b := setup(t)
	b.beat(t, "slow", b.now)
	if _, err := b.store.RecoverWorker(context.Background(), "slow", 15*time.Second, b.now); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.store.Workers(context.Background(), b.at(-time.Second)); len(got) != 1 || got[0].ID != "slow" {
		t.Errorf("Workers = %+v, want the worker that beat again kept", got)
	}
}

// TestPingRestoresShardCount: the health check runs a script and records the
// shard count again when Redis lost its data.
func TestPingRestoresShardCount(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if err := b.store.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	b.mr.FlushAll()
	if err := b.store.Ping(ctx); err != nil {
		t.Fatalf("Ping after FLUSHALL: %v", err)
	}
	if got := b.mr.HGet(testNS+":meta", "shards"); got != "1" {
		t.Errorf("shard count after Ping = %q, want 1 recorded again", got)
	}
	b.mr.HSet(testNS+":meta", "shards", "8")
	if err := b.store.Ping(ctx); err == nil {
		t.Error("Ping with another shard count recorded = nil, want an error")
	}
	b.mr.Close()
	if err := b.store.Ping(ctx); err == nil {
		t.Error("Ping with Redis gone = nil, want an error")
	}
}
