package redisstore

import (
	"cmp"
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
)

// packedOps runs the same batches on st: creates (POST, PUT with a flow
// key, a url with a line break, one due later), then the outcomes of the
// due ones in one FinishMany (completed; failed with a two-line error;
// retried; SERVICE_UNAVAILABLE without a status code, then requeued), and
// a cancel. It returns every record ReadOutbox gives for them.
func packedOps(t *testing.T, st *Store, now time.Time) []scheduler.Record {
	t.Helper()
	ctx := context.Background()
	mk := func(id, method, url, fk string, due time.Time) *scheduler.Event {
		return &scheduler.Event{App: testApp, ID: id, URL: url, Method: method, FlowKey: fk, DueAt: due,
			Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"id":"` + id + `"}`),
			Status: scheduler.StatusPending, CreatedAt: now, UpdatedAt: now}
	}
	evs := []*scheduler.Event{
		mk("ok", "POST", "https://example.com/ok?a=1", "", now),
		mk("fail", "PUT", "https://example.com/fail", "", now),
		mk("nl", "POST", "https://example.com/x\ny", "", now),
		mk("down", "POST", "https://example.com/down", "", now),
		mk("later", "PATCH", "https://example.com/later", "tenant-1", now.Add(time.Hour)),
	}
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		evs = append(evs, mk(id, "POST", "https://example.com/"+id, "", now))
	}
	res, err := st.CreateMany(ctx, evs, now)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Existing != nil {
			t.Fatalf("create %s: %+v", evs[i].ID, r)
		}
	}
	at := now.Add(time.Second)
	outcomes := map[string]scheduler.Outcome{
		"ok":   {Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{StatusCode: 200, DurationMS: 3}},
		"fail": {Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{StatusCode: 500, Error: "line one\nline two"}},
		"nl":   {Status: scheduler.StatusPending, Backoff: time.Hour, Attempt: scheduler.Attempt{StatusCode: 503}},
		"down": {Status: scheduler.StatusServiceUnavailable, Attempt: scheduler.Attempt{Error: "timeout after 30s"}},
	}
	var items []scheduler.FinishItem
	for sh := range st.Shards() {
		c, err := st.Claim(ctx, sh, testWorker, 100, time.Minute, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range c.Events {
			o, ok := outcomes[ev.ID]
			if !ok {
				o = outcomes["ok"]
			}
			o.Attempt.Attempt, o.Attempt.At, o.Attempt.Worker = ev.Attempts, at.UnixMilli(), testWorker
			items = append(items, scheduler.FinishItem{Lease: scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker,
				Attempt: ev.Attempts}, Outcome: o, Now: at})
		}
	}
	if len(items) != 8 {
		t.Fatalf("claimed %d events, want 8", len(items))
	}
	for i, r := range st.FinishMany(ctx, items) {
		if r.Err != nil || !r.Held {
			t.Fatalf("finish %s: %v, %v", items[i].Lease.ID, r.Held, r.Err)
		}
	}
	if _, err := st.Cancel(ctx, testApp, "later", at); err != nil {
		t.Fatal(err)
	}
	// Sent again before the archiver reads its final record: the record's
	// run is then read from what the record carries (overlayFinal).
	if _, err := st.Requeue(ctx, testApp, "down", retryable, true, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var recs []scheduler.Record
	for sh := range st.Shards() {
		got, err := st.ReadOutbox(ctx, sh, "a", false, 1000)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, got...)
	}
	return recs
}

// setupLayout is setupOutbox with a one-shard namespace of the given
// event layout.
func setupLayout(t *testing.T, real bool, layout int) *outboxEnv {
	t.Helper()
	return setupOutbox(t, real, Config{Namespace: testNS, Shards: 1, Retention: testRetention,
		WakeHorizon: testHorizon, EventLayout: layout})
}

// newEvent is a new event of the test app: a POST to example.com/<id>,
// due at due, created at e.now.
func (e *outboxEnv) newEvent(id string, due time.Time) *scheduler.Event {
	return &scheduler.Event{App: testApp, ID: id, URL: "https://example.com/" + id, Method: "POST", DueAt: due,
		Status: scheduler.StatusPending, CreatedAt: e.now, UpdatedAt: e.now}
}

// TestPackedOutboxAgrees: the same batches in a namespace of layout 2 (an
// outbox entry per event) and one of layout 3 (a batch's creates, and its
// finals, packed into one entry per shard) give the archiver the same
// records; in layout 3 the batches' creates and finals come from packed
// entries, but for the url and the error with a line break (entries of
// their own), and other entries stay one per event.
func TestPackedOutboxAgrees(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			one := setupOutbox(t, be.real, Config{Namespace: "one", Shards: 2, Retention: testRetention,
				WakeHorizon: testHorizon, EventLayout: layoutCompact})
			packed, err := New(context.Background(), one.rdb, Config{Namespace: "packed", Shards: 2,
				Retention: testRetention, WakeHorizon: testHorizon, EventLayout: layoutPacked})
			if err != nil {
				t.Fatal(err)
			}
			want := packedOps(t, one.store, one.now)
			got := packedOps(t, packed, one.now)
			if len(want) != 19 || len(got) != len(want) {
				t.Fatalf("%d records per event, %d packed; want 19 each", len(want), len(got))
			}
			order := func(a, b scheduler.Record) int {
				return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(string(a.Kind), string(b.Kind)),
					cmp.Compare(a.UpdatedMS, b.UpdatedMS))
			}
			slices.SortFunc(want, order)
			slices.SortFunc(got, order)
			entries := map[string]bool{}
			for i := range want {
				w, g := want[i], got[i]
				if w.Parts != 0 {
					t.Fatalf("%s %s: part of %d in layout 2", w.ID, w.Kind, w.Parts)
				}
				entries[g.StreamID] = true
				ownEntry := g.ID == "nl" && g.Kind == scheduler.RecordCreate || g.ID == "fail" && g.Kind == scheduler.RecordFinal ||
					g.Kind == scheduler.RecordAttempt || g.Kind == scheduler.RecordRequeue || g.ID == "later" && g.Kind == scheduler.RecordFinal
				if ownEntry != (g.Parts == 0) {
					t.Fatalf("%s %s: part %d of %d", g.ID, g.Kind, g.Part, g.Parts)
				}
				g.StreamID, g.Part, g.Parts, w.StreamID = "", 0, 0, ""
				g.Shard, w.Shard = 0, 0
				if !reflect.DeepEqual(w, g) {
					t.Fatalf("%s %s:\n per event %+v (event %+v)\n packed    %+v (event %+v)", w.ID, w.Kind, w, w.Event, g, g.Event)
				}
			}
			if n, err := packed.rdb.XLen(context.Background(), packed.k.out(0)).Result(); err != nil || int(n) >= len(got)/2 {
				t.Fatalf("shard 0 of the packed namespace has %d entries (%v) for %d records", n, err, len(got))
			}
		})
	}
}

// TestPackedAckAfterLastRecord: a packed entry is acknowledged and deleted
// only with a record that names it; records passed without their entry id
// (the archiver's, while others of the entry are not written) still start
// their events' retention.
func TestPackedAckAfterLastRecord(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupLayout(t, be.real, layoutPacked)
			recs := packedOps(t, e.store, e.now)
			var finals []scheduler.Record
			for _, r := range recs {
				if r.Kind == scheduler.RecordFinal && r.Parts > 1 && r.ID != "down" { // down was requeued since
					finals = append(finals, r)
				}
			}
			if len(finals) < 3 {
				t.Fatalf("%d final records in a packed entry, want at least 3", len(finals))
			}
			before := e.xlen(t, e.outKey("ok"))
			early := slices.Clone(finals[:len(finals)-1])
			for i := range early {
				early[i].StreamID = ""
			}
			e.ack(t, early)
			if n := e.xlen(t, e.outKey("ok")); n != before {
				t.Fatalf("XLEN %d after acknowledging records without their entry id, want %d", n, before)
			}
			for _, r := range early {
				if ttl := e.pttl(t, e.evKey(r.ID)); ttl <= 0 {
					t.Fatalf("%s archived, but PTTL %d", r.ID, ttl)
				}
			}
			last := finals[len(finals)-1]
			if ttl := e.pttl(t, e.evKey(last.ID)); ttl != -1 {
				t.Fatalf("%s not archived yet, but PTTL %d", last.ID, ttl)
			}
			e.ack(t, finals[len(finals)-1:])
			if n := e.xlen(t, e.outKey("ok")); n != before-1 {
				t.Fatalf("XLEN %d after acknowledging the entry's last record, want %d", n, before-1)
			}
			if ttl := e.pttl(t, e.evKey(last.ID)); ttl <= 0 {
				t.Fatalf("%s archived, but PTTL %d", last.ID, ttl)
			}
		})
	}
}

// TestPackedBatchFailure: a batch that fails on one of its events (here a
// value no release writes) keeps what it did before that event. The
// outcomes recorded before it have their final records and their leases
// end; the events created before it are due and have their create
// records: a packed entry is written also when the batch fails.
func TestPackedBatchFailure(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := setupLayout(t, be.real, layoutPacked)
			ev := func(id string) *scheduler.Event { return e.newEvent(id, e.now) }
			const malformed = "\x02\x7f"
			if err := e.rdb.Set(ctx, e.evKey("bad"), malformed, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if res, err := e.store.CreateMany(ctx, []*scheduler.Event{ev("c1"), ev("bad"), ev("c3")}, e.now); err == nil &&
				res[1].Err == nil {
				t.Fatalf("CreateMany over a malformed event = %+v, want an error", res)
			}
			kinds := func() []string {
				var out []string
				for _, x := range outboxEntries(t, e.rdb, e.outKey("c1")) {
					out = append(out, strings.TrimPrefix(x.Values["m"], testApp+"/")+" "+x.Values["k"])
				}
				return out
			}
			if got := kinds(); !slices.Equal(got, []string{"c1 create"}) {
				t.Fatalf("outbox after the failed batch = %q, want c1's create", got)
			}
			if _, err := e.rdb.ZScore(ctx, e.dueKey("c1"), testApp+"/c1").Result(); err != nil {
				t.Fatalf("c1 created before the failure is not due: %v", err)
			}
			if err := e.rdb.Del(ctx, e.evKey("bad")).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.CreateMany(ctx, []*scheduler.Event{ev("f1"), ev("f2"), ev("f3")}, e.now); err != nil {
				t.Fatal(err)
			}
			c, err := e.store.Claim(ctx, 0, testWorker, 10, time.Minute, e.now)
			if err != nil || len(c.Events) != 4 {
				t.Fatalf("claimed %d, %v; want c1, f1, f2, f3", len(c.Events), err)
			}
			var items []scheduler.FinishItem
			for _, id := range []string{"f1", "f2", "f3"} {
				items = append(items, scheduler.FinishItem{Lease: scheduler.Lease{App: testApp, ID: id, Worker: testWorker, Attempt: 1},
					Outcome: scheduler.Outcome{Status: scheduler.StatusCompleted,
						Attempt: scheduler.Attempt{Attempt: 1, At: e.now.UnixMilli(), StatusCode: 200, Worker: testWorker}},
					Now: e.now})
			}
			if err := e.rdb.Set(ctx, e.evKey("f2"), malformed, 0).Err(); err != nil {
				t.Fatal(err)
			}
			for i, r := range e.store.FinishMany(ctx, items) {
				if r.Err == nil {
					t.Fatalf("FinishMany %s over a malformed event: no error", items[i].Lease.ID)
				}
			}
			if got := kinds(); !slices.Equal(got, []string{"c1 create", "f1 create", "f2 create", "f3 create", "f1 final"}) {
				t.Fatalf("outbox after the failed finish = %q, want the creates and f1's final", got)
			}
			leases, err := e.rdb.ZRange(ctx, e.leaseKey("f1"), 0, -1).Result()
			if err != nil || !slices.Equal(leases, []string{testApp + "/c1", testApp + "/f2", testApp + "/f3"}) {
				t.Fatalf("leases after the failed finish = %q, %v; want f1's ended", leases, err)
			}
		})
	}
}

// TestBatchRefusedByRedis: a Redis that refuses writes (out of memory, or
// a replica after a failover) refuses a batch script's first write, inside
// the pcall that lets it write what it did before. The error keeps its
// code (not "ERR OOM ...": go-redis and INFO errorstats read the code),
// is ErrUnavailable as a single event's script's is, and the outcome that
// was not recorded keeps its lease, for the reaper to recover the event
// (redis-server; miniredis has neither maxmemory nor replicas).
func TestBatchRefusedByRedis(t *testing.T) {
	for _, layout := range []int{layoutHash, layoutCompact, layoutPacked} {
		for _, refuse := range []string{"OOM", "READONLY"} {
			t.Run(strconv.Itoa(layout)+"/"+refuse, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				e := setupLayout(t, true, layout)
				mk := func(id string) *scheduler.Event { return e.newEvent(id, e.now) }
				if _, err := e.store.Create(ctx, mk("f"), e.now); err != nil {
					t.Fatal(err)
				}
				if c, err := e.store.Claim(ctx, 0, testWorker, 10, time.Minute, e.now); err != nil || len(c.Events) != 1 {
					t.Fatalf("claimed %d, %v", len(c.Events), err)
				}
				if refuse == "OOM" {
					if err := e.rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
						t.Fatal(err)
					}
				} else if err := e.rdb.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
					t.Fatal(err)
				}
				_, batch := e.store.CreateMany(ctx, []*scheduler.Event{mk("b1"), mk("b2")}, e.now)
				fin := e.store.FinishMany(ctx, []scheduler.FinishItem{{
					Lease: scheduler.Lease{App: testApp, ID: "f", Worker: testWorker, Attempt: 1},
					Outcome: scheduler.Outcome{Status: scheduler.StatusCompleted,
						Attempt: scheduler.Attempt{Attempt: 1, At: e.now.UnixMilli(), StatusCode: 200, Worker: testWorker}},
					Now: e.now}})
				if refuse == "OOM" {
					if err := e.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
						t.Fatal(err)
					}
				} else if err := e.rdb.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
					t.Fatal(err)
				}
				for name, err := range map[string]error{"CreateMany": batch, "FinishMany": fin[0].Err} {
					var rerr redis.Error
					if !errors.Is(err, scheduler.ErrUnavailable) || !errors.As(err, &rerr) ||
						!strings.HasPrefix(rerr.Error(), refuse+" ") {
						t.Fatalf("%s: %v; want ErrUnavailable with Redis's %s error", name, err, refuse)
					}
				}
				got, err := e.store.Get(ctx, testApp, "f")
				if err != nil || got.Status != scheduler.StatusProcessing {
					t.Fatalf("event f = %+v, %v; want it PROCESSING (its outcome was refused)", got, err)
				}
				if _, err := e.rdb.ZScore(ctx, e.leaseKey("f"), testApp+"/f").Result(); err != nil {
					t.Fatalf("f's lease is gone (%v) though its outcome was not recorded: nothing would recover it", err)
				}
			})
		}
	}
}

// TestReadOutboxAfterPackedEntry: a read after one of packed entries asks
// for fewer entries (as many as make the records it wants), and reads on
// while there are more: it returns as many records as asked for when
// there are (or more, by what one read's entries hold beyond them),
// pending ones (after a failed write) and new ones alike, and taken over
// ones (ClaimOutbox). Else the archiver would take a short read
// of its pending entries for their end and leave the rest to a takeover.
func TestReadOutboxAfterPackedEntry(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := setupLayout(t, be.real, layoutPacked)
			mk := func(id string) *scheduler.Event { return e.newEvent(id, e.now.Add(time.Hour)) }
			single := func(prefix string, n int) {
				for i := range n {
					if ex, err := e.store.Create(ctx, mk(prefix+strconv.Itoa(i)), e.now); err != nil || ex != nil {
						t.Fatal(ex, err)
					}
				}
			}
			packed := func(prefix string, n int) {
				var evs []*scheduler.Event
				for i := range n {
					evs = append(evs, mk(prefix+strconv.Itoa(i)))
				}
				if _, err := e.store.CreateMany(ctx, evs, e.now); err != nil {
					t.Fatal(err)
				}
			}
			single("s", 20)
			if got := e.read(t, "a", false, 500); len(got) != 20 {
				t.Fatalf("read %d records, want 20", len(got))
			}
			packed("p", 64)
			if got := e.read(t, "a", false, 500); len(got) != 64 {
				t.Fatalf("read %d records, want 64", len(got))
			}
			// Its write failed: the archiver reads its pending ones again.
			if got := e.read(t, "a", true, 500); len(got) != 84 {
				t.Fatalf("pending read: %d records, want all 84", len(got))
			}
			// At least what was asked for; beyond it, at most what the last
			// read's entries held (here the packed one).
			if got := e.read(t, "a", true, 30); len(got) < 30 || len(got) > 84 {
				t.Fatalf("pending read of 30: %d records", len(got))
			}
			single("t", 30)
			if got := e.read(t, "a", false, 25); len(got) != 25 {
				t.Fatalf("read of 25 new ones after a packed entry: %d records", len(got))
			}
			e.advance(50 * time.Millisecond)
			got, err := e.store.ClaimOutbox(ctx, 0, "b", 10*time.Millisecond, 500)
			if err != nil || len(got) != 109 {
				t.Fatalf("ClaimOutbox = %d records, %v; want all 109 a holds", len(got), err)
			}
		})
	}
}

// TestReadOutboxUnreadablePackedEntry: a packed entry whose lines do not
// make the records its n says counts as the one record it becomes (an
// unreadable one, skipped), also when a read counts what it has: a
// pending read then still returns every pending entry, not fewer than
// asked while more are pending (which the archiver would take for their
// end).
func TestReadOutboxUnreadablePackedEntry(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := setupLayout(t, be.real, layoutPacked)
			if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.outKey("any"),
				Values: []any{"k", packedCreates, "n", "64", "e", testApp + "/x\n1 2   https://x/\n"}}).Err(); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if ex, err := e.store.Create(ctx, e.newEvent("s"+strconv.Itoa(i), e.now.Add(time.Hour)), e.now); err != nil || ex != nil {
					t.Fatal(ex, err)
				}
			}
			got := e.read(t, "a", false, 500)
			if len(got) != 11 || got[0].Kind != "" {
				t.Fatalf("read %d records (first %+v), want the unreadable entry as one, then 10", len(got), got[0])
			}
			if got := e.read(t, "a", true, 20); len(got) != 11 {
				t.Fatalf("pending read of 20: %d records, want all 11 pending", len(got))
			}
		})
	}
}

// TestClaimOutboxPastLiveConsumers: the entries of a dead archiver are
// taken over even when the pending list's head belongs to a live one, more
// than an XAUTOCLAIM call looks at (COUNT×10 entries; redis-server).
func TestClaimOutboxPastLiveConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setupLayout(t, true, layoutCompact)
	for i := range 60 {
		if _, err := e.store.Create(ctx, e.newEvent("s"+strconv.Itoa(i), e.now.Add(time.Hour)), e.now); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.read(t, "live", false, 50); len(got) != 50 {
		t.Fatalf("live read %d", len(got))
	}
	if got := e.read(t, "dead", false, 10); len(got) != 10 {
		t.Fatalf("dead read %d", len(got))
	}
	time.Sleep(100 * time.Millisecond)
	e.read(t, "live", true, 500) // live is alive: its pending entries are fresh again
	got, err := e.store.ClaimOutbox(ctx, 0, "heir", 50*time.Millisecond, 3)
	if err != nil || len(got) == 0 {
		t.Fatalf("ClaimOutbox(count 3) = %d records, %v; want dead's entries past live's 50", len(got), err)
	}
}
