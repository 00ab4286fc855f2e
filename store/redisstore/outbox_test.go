package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// An outbox bundle runs on miniredis (its clock pinned to now, moved by
// advance) or on a real redis-server (real time; advance sleeps). Its clock
// is the real time, so that expiries computed from finish times are in the
// future on both.
type outboxEnv struct {
	*bundle
	real  bool
	clock time.Time // miniredis' pinned time
}

type backend struct {
	name string
	real bool
}

var backends = []backend{{"miniredis", false}, {"redis-server", true}}

func setupOutbox(t *testing.T, real bool, cfg ...Config) *outboxEnv {
	t.Helper()
	c := Config{Namespace: testNS, Shards: 1, Retention: testRetention, WakeHorizon: testHorizon}
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.EventLayout = cmp.Or(c.EventLayout, testLayout) // as setup
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	e := &outboxEnv{real: real, clock: now}
	var rdb *redis.Client
	var mr *miniredis.Miniredis
	if real {
		srv := redistest.Start(t)
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr()})
	} else {
		mr = miniredis.RunT(t)
		mr.SetTime(now)
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
	}
	t.Cleanup(func() { _ = rdb.Close() })
	st, err := New(context.Background(), rdb, c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.bundle = &bundle{store: st, mr: mr, rdb: rdb, now: now}
	return e
}

// advance lets d pass for the server's idle times and stream ids.
func (e *outboxEnv) advance(d time.Duration) {
	if e.real {
		time.Sleep(d)
		return
	}
	e.clock = e.clock.Add(d)
	e.mr.SetTime(e.clock)
}

func (e *outboxEnv) read(t *testing.T, consumer string, pending bool, count int) []scheduler.Record {
	t.Helper()
	recs, err := e.store.ReadOutbox(context.Background(), 0, consumer, pending, count)
	if err != nil {
		t.Fatalf("ReadOutbox(%s, pending=%v): %v", consumer, pending, err)
	}
	return recs
}

func (e *outboxEnv) ack(t *testing.T, recs []scheduler.Record) {
	t.Helper()
	if err := e.store.AckOutbox(context.Background(), 0, recs); err != nil {
		t.Fatalf("AckOutbox: %v", err)
	}
}

func (e *outboxEnv) xlen(t *testing.T, key string) int64 {
	t.Helper()
	n, err := e.rdb.XLen(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("XLEN %s: %v", key, err)
	}
	return n
}

func (e *outboxEnv) pttl(t *testing.T, key string) int64 {
	t.Helper()
	n, err := e.rdb.Do(context.Background(), "PTTL", key).Int64()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return n
}

func (e *outboxEnv) expireTime(t *testing.T, key string) int64 {
	t.Helper()
	n, err := e.rdb.Do(context.Background(), "PEXPIRETIME", key).Int64()
	if err != nil {
		t.Fatalf("PEXPIRETIME %s: %v", key, err)
	}
	return n
}

func (e *outboxEnv) finish(t *testing.T, id string, attempt int, o scheduler.Outcome, now time.Time) {
	t.Helper()
	l := scheduler.Lease{App: testApp, ID: id, Worker: testWorker, Attempt: attempt}
	if ok, err := e.store.Finish(context.Background(), l, o, now); !ok || err != nil {
		t.Fatalf("Finish %s = %v, %v", id, ok, err)
	}
}

func streamIDs(recs []scheduler.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.StreamID
	}
	return out
}

func kinds(recs []scheduler.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID + " " + string(r.Kind)
	}
	return out
}

// A body that is not UTF-8 and holds NUL bytes: it must reach the archive
// byte for byte (it travels as its own raw stream field, not inside JSON).
var binaryBody = []byte{0xff, 0x00, 'a', 0xfe, 0x00, 0xc3, 0x28, 0x80, '\n', 0x00}

func TestReadOutboxRecords(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			created := e.at(-time.Minute)

			// bin: created, one retried attempt, then completed.
			bin := newEvent("bin", e.now, created)
			bin.Method = "PUT"
			bin.Headers = map[string]string{"X-A": "1"}
			bin.Body = binaryBody
			bin.MaxAttempts = 5
			bin.Timeout = 2 * time.Second
			e.create(t, bin)
			e.claim(t, testWorker, 10, e.now)
			t1 := e.at(time.Second)
			att1 := scheduler.Attempt{Attempt: 1, At: t1.UnixMilli(), StatusCode: 503, DurationMS: 7, Worker: testWorker, Response: "busy"}
			e.finish(t, "bin", 1, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Second, Attempt: att1}, t1)
			due2 := e.at(2 * time.Second)
			if c := e.claim(t, testWorker, 10, due2); len(c.Events) != 1 || c.Events[0].Attempts != 2 {
				t.Fatalf("second claim = %+v", c.Events)
			}
			t3 := e.at(3 * time.Second)
			att2 := scheduler.Attempt{Attempt: 2, At: t3.UnixMilli(), StatusCode: 200, DurationMS: 9, Worker: testWorker}
			e.finish(t, "bin", 2, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: att2}, t3)
			// Redis keeps the body until the archive has it (archived.lua
			// drops it); the outbox carries it.
			if got := e.get(t, "bin"); !bytes.Equal(got.Body, binaryBody) || got.BodyDropped {
				t.Fatalf("completed event lost its body before it was archived: %+v", got)
			}

			// c: cancelled while pending (no attempt).
			e.create(t, newEvent("c", e.at(time.Hour), e.now))
			t4 := e.at(4 * time.Second)
			if _, err := e.store.Cancel(ctx, testApp, "c", t4); err != nil {
				t.Fatal(err)
			}

			// f: failed, then retried by an operator.
			e.create(t, newEvent("f", t4, e.now))
			if c := e.claim(t, testWorker, 10, t4); len(c.Events) != 1 || c.Events[0].ID != "f" {
				t.Fatalf("claim f = %+v", c.Events)
			}
			t5 := e.at(5 * time.Second)
			att3 := scheduler.Attempt{Attempt: 1, At: t5.UnixMilli(), StatusCode: 410, Worker: testWorker}
			e.finish(t, "f", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: att3}, t5)
			t6 := e.at(6 * time.Second)
			if _, err := e.store.Requeue(ctx, testApp, "f", retryable, true, t6); err != nil {
				t.Fatal(err)
			}

			recs := e.read(t, "c1", false, 100)
			want := []string{"bin create", "bin attempt", "bin final", "c create", "c final", "f create", "f final", "f requeue"}
			if got := kinds(recs); !slices.Equal(got, want) {
				t.Fatalf("records = %q, want %q", got, want)
			}
			raw := outboxEntries(t, e.rdb, e.outKey("bin"))
			if len(raw) != len(recs) {
				t.Fatalf("XRANGE = %d entries", len(raw))
			}
			for i, r := range recs {
				if r.Shard != 0 || r.StreamID != raw[i].ID || r.App != testApp {
					t.Fatalf("record %d: shard %d, id %q, app %q; want 0, %q, %q", i, r.Shard, r.StreamID, r.App, raw[i].ID, testApp)
				}
			}

			// create: url, method, due, created; no body.
			r := recs[0]
			if r.CreatedMS != created.UnixMilli() || r.UpdatedMS != created.UnixMilli() || r.Status != scheduler.StatusPending ||
				r.Attempt != nil || r.Event == nil {
				t.Fatalf("create record = %+v", r)
			}
			if ev := r.Event; ev.App != testApp || ev.ID != "bin" || ev.URL != bin.URL || ev.Method != "PUT" ||
				!ev.DueAt.Equal(e.now) || !ev.CreatedAt.Equal(created) || !ev.UpdatedAt.Equal(created) ||
				ev.Status != scheduler.StatusPending || ev.Body != nil {
				t.Fatalf("create event = %+v", ev)
			}

			// attempt: the attempt from h, the next due time.
			r = recs[1]
			if r.CreatedMS != created.UnixMilli() || r.UpdatedMS != t1.UnixMilli() || r.Status != scheduler.StatusPending ||
				r.Attempt == nil || *r.Attempt != att1 {
				t.Fatalf("attempt record = %+v (attempt %+v)", r, r.Attempt)
			}
			if r.Event == nil || !r.Event.DueAt.Equal(due2) || r.Event.Status != scheduler.StatusPending {
				t.Fatalf("attempt event = %+v, want due %v", r.Event, due2)
			}

			// final: the whole event, binary body included, and the last attempt.
			r = recs[2]
			if r.CreatedMS != created.UnixMilli() || r.UpdatedMS != t3.UnixMilli() || r.Status != scheduler.StatusCompleted ||
				r.Attempt == nil || *r.Attempt != att2 || r.Event == nil {
				t.Fatalf("final record = %+v (attempt %+v)", r, r.Attempt)
			}
			ev := r.Event
			if !bytes.Equal(ev.Body, binaryBody) || ev.BodyDropped {
				t.Fatalf("final body = %q (dropped %v), want %q byte for byte", ev.Body, ev.BodyDropped, binaryBody)
			}
			if ev.App != testApp || ev.ID != "bin" || ev.URL != bin.URL || ev.Method != "PUT" || ev.Headers["X-A"] != "1" ||
				len(ev.Headers) != 1 || ev.Status != scheduler.StatusCompleted || ev.Attempts != 2 || ev.MaxAttempts != 5 ||
				ev.Timeout != 2*time.Second || !ev.DueAt.Equal(due2) || !ev.CreatedAt.Equal(created) ||
				!ev.UpdatedAt.Equal(t3) || !ev.FinishedAt.Equal(t3) || ev.LastStatusCode != 200 || ev.LastError != "" ||
				ev.Worker != testWorker || len(ev.History) != 0 {
				t.Fatalf("final event = %+v", ev)
			}
			// On the wire: how the run ended, not the event (the archiver
			// reads that from the hash): no snapshot, no body.
			for _, f := range []string{"p", "ev", "b", "u"} {
				if _, ok := raw[2].Values[f]; ok {
					t.Fatalf("final entry carries %q: %v", f, raw[2].Values)
				}
			}
			if raw[2].Values["a"] != "2" || raw[2].Values["lc"] != "200" || raw[2].Values["d"] != strconv.FormatInt(due2.UnixMilli(), 10) {
				t.Fatalf("final entry = %v, want a 2, lc 200, d %d", raw[2].Values, due2.UnixMilli())
			}

			// cancel: final without an attempt.
			r = recs[4]
			if r.Status != scheduler.StatusCancelled || r.Attempt != nil || r.UpdatedMS != t4.UnixMilli() ||
				r.CreatedMS != e.now.UnixMilli() || r.Event == nil || r.Event.Status != scheduler.StatusCancelled ||
				!r.Event.FinishedAt.Equal(t4) || r.Event.Body != nil || r.Event.BodyDropped {
				t.Fatalf("cancel record = %+v, event %+v", r, r.Event)
			}

			// failed final, then requeue: due now, attempts reset.
			r = recs[6]
			// The hash was requeued since: the event is the entry's run, as it ended.
			if r.Status != scheduler.StatusFailed || r.Event.Status != scheduler.StatusFailed || r.Event.Worker != "" ||
				r.Attempt == nil || *r.Attempt != att3 || r.Event.LastStatusCode != 410 ||
				r.Event.Attempts != 1 || !r.Event.FinishedAt.Equal(t5) {
				t.Fatalf("failed record = %+v, event %+v", r, r.Event)
			}
			r = recs[7]
			if r.Status != scheduler.StatusPending || r.UpdatedMS != t6.UnixMilli() || r.CreatedMS != e.now.UnixMilli() ||
				r.Attempt != nil || r.Event == nil || !r.Event.DueAt.Equal(t6) || r.Event.Attempts != 0 ||
				r.Event.Status != scheduler.StatusPending || !r.Event.UpdatedAt.Equal(t6) {
				t.Fatalf("requeue record = %+v, event %+v", r, r.Event)
			}
		})
	}
}

func TestReadOutboxStaleAttempt(t *testing.T) {
	t.Parallel()
	e := setupOutbox(t, false)
	ctx := context.Background()
	e.createAndClaim(t, newEvent("e", e.now, e.now))
	reaped := e.at(visibility + time.Millisecond)
	if n, err := e.store.Reap(ctx, 0, 10, 5, reaped); n != 1 || err != nil {
		t.Fatalf("Reap = %d, %v", n, err)
	}
	e.claim(t, "w2", 10, reaped)
	late := scheduler.Attempt{Attempt: 1, At: e.at(time.Minute).UnixMilli(), StatusCode: 200, Worker: testWorker}
	if ok, err := e.store.Finish(ctx, scheduler.Lease{App: testApp, ID: "e", Worker: testWorker, Attempt: 1},
		scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: late}, e.at(time.Minute)); ok || err != nil {
		t.Fatalf("late Finish = %v, %v", ok, err)
	}
	recs := e.read(t, "c1", false, 10)
	if got := kinds(recs); !slices.Equal(got, []string{"e create", "e attempt", "e attempt"}) {
		t.Fatalf("records = %q", got)
	}
	// The reaped attempt: back to PENDING, due at once.
	if r := recs[1]; r.Status != scheduler.StatusPending || r.Attempt == nil || r.Attempt.Error != "lease expired" ||
		r.Event == nil || !r.Event.DueAt.Equal(reaped) {
		t.Fatalf("reaped record = %+v", r)
	}
	// The stale one reports the current state, not a change.
	stale := late
	stale.Stale = true
	if r := recs[2]; r.Status != scheduler.StatusProcessing || r.UpdatedMS != reaped.UnixMilli() ||
		r.Attempt == nil || *r.Attempt != stale || r.Event != nil {
		t.Fatalf("stale record = %+v (attempt %+v)", r, r.Attempt)
	}
}

func TestReadOutboxNewAndPending(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			// Nothing yet (the group and stream do not exist).
			if recs := e.read(t, "a", false, 10); len(recs) != 0 {
				t.Fatalf("empty outbox read %d", len(recs))
			}
			if recs := e.read(t, "a", true, 10); len(recs) != 0 {
				t.Fatalf("empty outbox pending read %d", len(recs))
			}
			for _, id := range []string{"e1", "e2", "e3"} {
				e.create(t, newEvent(id, e.at(time.Hour), e.now))
			}
			first := e.read(t, "a", false, 2)
			if got := kinds(first); !slices.Equal(got, []string{"e1 create", "e2 create"}) {
				t.Fatalf("first read = %q", got)
			}
			// Read but not acknowledged: not new any more, for anyone.
			second := e.read(t, "a", false, 10)
			if got := kinds(second); !slices.Equal(got, []string{"e3 create"}) {
				t.Fatalf("second read = %q, want only e3", got)
			}
			if recs := e.read(t, "a", false, 10); len(recs) != 0 {
				t.Fatalf("third read = %q, want none", kinds(recs))
			}
			if recs := e.read(t, "b", false, 10); len(recs) != 0 {
				t.Fatalf("other consumer read new = %q, want none", kinds(recs))
			}
			// They come back as a's pending entries, and only a's.
			pending := e.read(t, "a", true, 10)
			if !slices.Equal(streamIDs(pending), append(streamIDs(first), streamIDs(second)...)) {
				t.Fatalf("pending = %q", kinds(pending))
			}
			// (miniredis ignores COUNT when reading a consumer's history.)
			if recs := e.read(t, "a", true, 1); be.real && !slices.Equal(streamIDs(recs), streamIDs(first[:1])) {
				t.Fatalf("pending with count 1 = %q", kinds(recs))
			}
			if recs := e.read(t, "b", true, 10); len(recs) != 0 {
				t.Fatalf("b's pending = %q, want none", kinds(recs))
			}
			// Parsed the same either way.
			if pending[0].Kind != scheduler.RecordCreate || pending[0].Event == nil || pending[0].Event.URL != first[0].Event.URL {
				t.Fatalf("pending record = %+v", pending[0])
			}
			e.ack(t, first)
			if recs := e.read(t, "a", true, 10); !slices.Equal(streamIDs(recs), streamIDs(second)) {
				t.Fatalf("pending after ack = %q, want e3", kinds(recs))
			}
			e.ack(t, second)
			if recs := e.read(t, "a", true, 10); len(recs) != 0 {
				t.Fatalf("pending after acking all = %q", kinds(recs))
			}
			// New entries after that are new.
			e.create(t, newEvent("e4", e.at(time.Hour), e.now))
			if recs := e.read(t, "a", false, 10); !slices.Equal(kinds(recs), []string{"e4 create"}) {
				t.Fatalf("read after ack = %q", kinds(recs))
			}
		})
	}
}

func TestReadOutboxNoGroup(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			out := e.outKey("e1")
			e.create(t, newEvent("e1", e.at(time.Hour), e.now))
			if recs := e.read(t, "a", false, 10); len(recs) != 1 {
				t.Fatalf("read = %q", kinds(recs))
			}

			// The group is destroyed (an operator, a restore): it is made again
			// from the start of the stream, so nothing left in it is missed.
			if err := e.rdb.XGroupDestroy(ctx, out, ArchiverGroup).Err(); err != nil {
				t.Fatal(err)
			}
			if recs := e.read(t, "a", false, 10); !slices.Equal(kinds(recs), []string{"e1 create"}) {
				t.Fatalf("read after XGROUP DESTROY = %q", kinds(recs))
			}

			// The stream is gone with its group (Redis lost its data).
			if err := e.rdb.Del(ctx, out).Err(); err != nil {
				t.Fatal(err)
			}
			if recs := e.read(t, "a", false, 10); len(recs) != 0 {
				t.Fatalf("read after DEL = %q", kinds(recs))
			}
			if err := e.rdb.Del(ctx, out).Err(); err != nil {
				t.Fatal(err)
			}
			if recs := e.read(t, "a", true, 10); len(recs) != 0 {
				t.Fatalf("pending read after DEL = %q", kinds(recs))
			}
			if recs, err := e.store.ClaimOutbox(ctx, 0, "a", time.Millisecond, 10); err != nil || len(recs) != 0 {
				t.Fatalf("ClaimOutbox after DEL = %q, %v", kinds(recs), err)
			}
			e.create(t, newEvent("e2", e.at(time.Hour), e.now))
			if recs := e.read(t, "a", false, 10); !slices.Equal(kinds(recs), []string{"e2 create"}) {
				t.Fatalf("read after recovery = %q", kinds(recs))
			}
		})
	}
}

func TestClaimOutbox(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			idle := time.Second
			if be.real {
				idle = 300 * time.Millisecond
			}
			for _, id := range []string{"e1", "e2"} {
				e.create(t, newEvent(id, e.at(time.Hour), e.now))
			}
			// a reads two entries and dies.
			old := e.read(t, "a", false, 10)
			if len(old) != 2 {
				t.Fatalf("a read %q", kinds(old))
			}
			e.advance(idle + idle/2)
			// A fresh entry a (or another live archiver) is working on.
			e.create(t, newEvent("e3", e.at(time.Hour), e.now))
			fresh := e.read(t, "a", false, 10)
			if !slices.Equal(kinds(fresh), []string{"e3 create"}) {
				t.Fatalf("a read %q", kinds(fresh))
			}

			got, err := e.store.ClaimOutbox(ctx, 0, "b", idle, 10)
			if err != nil {
				t.Fatalf("ClaimOutbox: %v", err)
			}
			if !slices.Equal(streamIDs(got), streamIDs(old)) {
				t.Fatalf("claimed %q, want only the idle %q", kinds(got), kinds(old))
			}
			if got[0].Kind != scheduler.RecordCreate || got[0].Event == nil || got[0].Event.URL != old[0].Event.URL || got[0].Shard != 0 {
				t.Fatalf("claimed record = %+v", got[0])
			}
			// b owns them now; a keeps only the fresh one.
			if recs := e.read(t, "b", true, 10); !slices.Equal(streamIDs(recs), streamIDs(old)) {
				t.Fatalf("b pending = %q", kinds(recs))
			}
			if recs := e.read(t, "a", true, 10); !slices.Equal(streamIDs(recs), streamIDs(fresh)) {
				t.Fatalf("a pending = %q", kinds(recs))
			}
			// Just claimed: not idle, so nobody takes them over again yet.
			if recs, err := e.store.ClaimOutbox(ctx, 0, "c", idle, 10); err != nil || len(recs) != 0 {
				t.Fatalf("second ClaimOutbox = %q, %v", kinds(recs), err)
			}
			// count bounds a claim.
			e.advance(idle + idle/2)
			if recs, err := e.store.ClaimOutbox(ctx, 0, "c", idle, 1); err != nil || len(recs) != 1 {
				t.Fatalf("ClaimOutbox count 1 = %q, %v", kinds(recs), err)
			}
			// Acknowledged entries are never claimed.
			e.ack(t, append(old, fresh...))
			e.advance(idle + idle/2)
			if recs, err := e.store.ClaimOutbox(ctx, 0, "d", idle, 10); err != nil || len(recs) != 0 {
				t.Fatalf("ClaimOutbox after ack = %q, %v", kinds(recs), err)
			}
		})
	}
}

func TestAckOutbox(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()

			// old finished long ago: its retention window has already passed.
			oldT := e.at(-2 * testRetention)
			e.create(t, newEvent("old", oldT, oldT))
			if c := e.claim(t, testWorker, 10, oldT); len(c.Events) != 1 {
				t.Fatalf("claim old = %+v", c.Events)
			}
			e.finish(t, "old", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 400}}, oldT)

			// done finished now; re finished and was retried (live again);
			// live never finished; gone was cancelled.
			doneT := e.at(-time.Minute)
			e.create(t, newEvent("done", doneT, doneT))
			e.create(t, newEvent("re", doneT, doneT))
			if c := e.claim(t, testWorker, 10, doneT); len(c.Events) != 2 {
				t.Fatalf("claim = %+v", c.Events)
			}
			e.finish(t, "done", 1, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 200}}, doneT)
			e.finish(t, "re", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 400}}, doneT)
			if _, err := e.store.Requeue(ctx, testApp, "re", retryable, true, e.at(time.Hour)); err != nil {
				t.Fatal(err)
			}
			e.create(t, newEvent("live", e.at(time.Hour), e.now))
			e.create(t, newEvent("gone", e.at(time.Hour), e.now))
			cancelT := e.at(-time.Second)
			if _, err := e.store.Cancel(ctx, testApp, "gone", cancelT); err != nil {
				t.Fatal(err)
			}

			recs := e.read(t, "a", false, 100)
			want := []string{"old create", "old final", "done create", "re create", "done final", "re final",
				"re requeue", "live create", "gone create", "gone final"}
			if !slices.Equal(kinds(recs), want) {
				t.Fatalf("records = %q, want %q", kinds(recs), want)
			}
			for _, id := range []string{"old", "done", "re", "live", "gone"} {
				if n := e.pttl(t, e.evKey(id)); n != -1 {
					t.Fatalf("%s: PTTL %d before archiving, want -1", id, n)
				}
			}
			out := e.outKey("old")
			total := e.xlen(t, out)

			// Acknowledging creates only: entries go, no expiry is set.
			var creates, rest []scheduler.Record
			for _, r := range recs {
				if r.Kind == scheduler.RecordCreate {
					creates = append(creates, r)
				} else {
					rest = append(rest, r)
				}
			}
			e.ack(t, creates)
			if n := e.xlen(t, out); n != total-int64(len(creates)) {
				t.Fatalf("XLEN after acking creates = %d, want %d", n, total-int64(len(creates)))
			}
			for _, id := range []string{"old", "done", "re", "live", "gone"} {
				if n := e.pttl(t, e.evKey(id)); n != -1 {
					t.Fatalf("%s: PTTL %d after acking its create, want -1", id, n)
				}
			}
			if recs := e.read(t, "a", true, 100); !slices.Equal(streamIDs(recs), streamIDs(rest)) {
				t.Fatalf("pending after acking creates = %q", kinds(recs))
			}

			e.ack(t, rest)
			if n := e.xlen(t, out); n != 0 {
				t.Fatalf("XLEN after acking all = %d", n)
			}
			if p, err := e.rdb.XPending(ctx, out, ArchiverGroup).Result(); err != nil || p.Count != 0 {
				t.Fatalf("XPENDING = %+v, %v", p, err)
			}
			// Finished and archived: expires at finish + retention.
			if got, want := e.expireTime(t, e.evKey("done")), doneT.Add(testRetention).UnixMilli(); got != want {
				t.Fatalf("done PEXPIRETIME = %d, want finish + retention %d", got, want)
			}
			if got, want := e.expireTime(t, e.evKey("gone")), cancelT.Add(testRetention).UnixMilli(); got != want {
				t.Fatalf("gone PEXPIRETIME = %d, want %d", got, want)
			}
			if ttl := e.pttl(t, e.evKey("done")); ttl <= 0 || ttl > (testRetention-time.Minute).Milliseconds()+1000 {
				t.Fatalf("done PTTL = %d ms, want about %v", ttl, testRetention-time.Minute)
			}
			// Retried since it finished: live again, no expiry.
			if n := e.pttl(t, e.evKey("re")); n != -1 {
				t.Fatalf("re PTTL = %d, want -1", n)
			}
			if got := e.get(t, "re"); got.Status != scheduler.StatusPending {
				t.Fatalf("re = %+v", got)
			}
			if n := e.pttl(t, e.evKey("live")); n != -1 {
				t.Fatalf("live PTTL = %d, want -1", n)
			}
			// Its retention window was already over: gone at once.
			if n, err := e.rdb.Exists(ctx, e.evKey("old")).Result(); err != nil || n != 0 {
				t.Fatalf("old EXISTS = %d, %v; want deleted", n, err)
			}

			// Acknowledging again (another archiver did it first) is harmless.
			e.ack(t, recs)
			if n := e.xlen(t, out); n != 0 {
				t.Fatalf("XLEN = %d", n)
			}
			if got, want := e.expireTime(t, e.evKey("done")), doneT.Add(testRetention).UnixMilli(); got != want {
				t.Fatalf("done PEXPIRETIME after a second ack = %d, want %d", got, want)
			}
			if err := e.store.AckOutbox(ctx, 0, nil); err != nil {
				t.Fatalf("AckOutbox(nil) = %v", err)
			}
		})
	}
}

func TestOutboxLag(t *testing.T) {
	t.Parallel()
	e := setupOutbox(t, false, Config{Namespace: testNS, Shards: 4, Retention: testRetention})
	ctx := context.Background()
	lag := func() (int64, time.Time) {
		t.Helper()
		n, oldest, err := e.store.OutboxLag(ctx)
		if err != nil {
			t.Fatalf("OutboxLag: %v", err)
		}
		return n, oldest
	}
	if n, oldest := lag(); n != 0 || !oldest.IsZero() {
		t.Fatalf("empty lag = %d, %v", n, oldest)
	}

	// Events on two different shards, the first one 5s older.
	var ids []string
	shardOf := map[string]int{}
	for i := 0; len(ids) < 2; i++ {
		id := "e" + string(rune('a'+i))
		sh := e.store.k.shard(testApp + "/" + id)
		if len(ids) == 1 && shardOf[ids[0]] == sh {
			continue
		}
		shardOf[id] = sh
		ids = append(ids, id)
	}
	t0 := e.clock
	e.create(t, newEvent(ids[0], e.at(time.Hour), e.now))
	e.advance(5 * time.Second)
	e.create(t, newEvent(ids[1], e.at(time.Hour), e.now))
	if _, err := e.store.Cancel(ctx, testApp, ids[1], e.now); err != nil {
		t.Fatal(err)
	}
	n, oldest := lag()
	if n != 3 || !oldest.Equal(t0) {
		t.Fatalf("lag = %d, %v; want 3, %v", n, oldest, t0)
	}
	// Archive the older shard: the oldest is now the other one's.
	first := shardOf[ids[0]]
	recs, err := e.store.ReadOutbox(ctx, first, "a", false, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadOutbox shard %d = %d, %v", first, len(recs), err)
	}
	if err := e.store.AckOutbox(ctx, first, recs); err != nil {
		t.Fatal(err)
	}
	n, oldest = lag()
	if n != 2 || !oldest.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("lag = %d, %v; want 2, %v", n, oldest, t0.Add(5*time.Second))
	}
	// Read but not acknowledged still counts.
	second := shardOf[ids[1]]
	recs, err = e.store.ReadOutbox(ctx, second, "a", false, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ReadOutbox shard %d = %d, %v", second, len(recs), err)
	}
	if n, _ := lag(); n != 2 {
		t.Fatalf("lag with pending entries = %d, want 2", n)
	}
	if err := e.store.AckOutbox(ctx, second, recs); err != nil {
		t.Fatal(err)
	}
	if n, oldest := lag(); n != 0 || !oldest.IsZero() {
		t.Fatalf("lag after archiving all = %d, %v", n, oldest)
	}
}

func TestMalformedOutboxEntry(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			out := e.outKey("x")
			bad := []map[string]any{
				{"garbage": "\xff\x00"},
				{"m": "no-slash", "k": "create", "c": "1", "t": "1", "s": "PENDING", "u": "https://x/", "d": "1"},
				{"m": "app/x", "k": "mystery", "c": "1", "t": "1", "s": "PENDING"},
				{"m": "app/x", "k": "final", "c": "1", "t": "1", "s": "FAILED", "ev": "not json"},
				{"m": "app/x", "k": "final", "c": "1", "t": "1", "s": "FAILED", "ev": `["u","https://x/","h","{not json"]`},
				{"m": "app/x", "k": "final", "c": "1", "t": "1", "s": "FAILED", "p": "3:abc"},
				{"m": "app/x", "k": "final", "c": "1", "t": "1", "s": "FAILED", "p": "99:short"},
				{"m": "app/x", "c": "1", "t": "1", "s": "PENDING"},
				// Readable, but without what the archive needs (it would refuse
				// the whole batch): identity, creation time, status.
				{"m": "/x", "k": "create", "c": "1", "t": "1", "s": "PENDING", "u": "https://x/", "d": "1"},
				{"m": "app/", "k": "create", "c": "1", "t": "1", "s": "PENDING", "u": "https://x/", "d": "1"},
				{"m": "app/x", "k": "create", "t": "1", "s": "PENDING", "u": "https://x/", "d": "1"},
				{"m": "app/x", "k": "attempt", "c": "1", "t": "1", "h": `{"attempt":1}`},
				{"m": "app/x", "k": "requeue", "c": "0", "t": "1", "s": "PENDING", "d": "1", "a": "0"},
				// An attempt entry of a release before the archive.
				{"m": "app/x", "k": "attempt", "h": `{"attempt":1,"at":1,"error":"lease expired"}`},
			}
			var badIDs []string
			for _, v := range bad {
				id, err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: out, Values: v}).Result()
				if err != nil {
					t.Fatal(err)
				}
				badIDs = append(badIDs, id)
			}
			e.create(t, newEvent("x", e.at(time.Hour), e.now))

			recs := e.read(t, "a", false, 100)
			if len(recs) != len(bad)+1 {
				t.Fatalf("read %d records, want %d", len(recs), len(bad)+1)
			}
			for i, r := range recs[:len(bad)] {
				if r.Kind != "" || r.StreamID != badIDs[i] || r.Shard != 0 {
					t.Fatalf("malformed entry %d (%v) = %+v, want an empty Kind", i, bad[i], r)
				}
			}
			if r := recs[len(bad)]; r.Kind != scheduler.RecordCreate || r.ID != "x" {
				t.Fatalf("good entry after the bad ones = %+v", r)
			}
			// The archiver acknowledges what it skips: the entries go.
			e.ack(t, recs)
			if n := e.xlen(t, out); n != 0 {
				t.Fatalf("XLEN after ack = %d", n)
			}
			if n := e.pttl(t, e.evKey("x")); n != -1 {
				t.Fatalf("x PTTL = %d, want -1", n)
			}
		})
	}
}

// Releases before the archive wrote final entries as m, k, h and ev (the
// whole hash, body and history included) and nobody read them: an upgraded
// deployment's outbox starts with them.
func TestLegacyFinalOutboxEntry(t *testing.T) {
	t.Parallel()
	e := setupOutbox(t, false)
	ctx := context.Background()
	created, finished := e.at(-time.Hour), e.at(-time.Minute)
	hash := []string{"u", "https://x.example/h", "d", msStr(created), "s", "FAILED", "c", msStr(created), "a", "2",
		"t", msStr(finished), "f", msStr(finished), "lc", "404", "le", "", "w", "w9", "b", "old body",
		"hi", `{"attempt":1,"at":1}` + "\n" + `{"attempt":2,"at":2,"status_code":404}` + "\n"}
	ev, _ := json.Marshal(hash)
	line := `{"attempt":2,"at":2,"status_code":404}`
	if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.outKey("old"),
		Values: []any{"m", "app/old", "k", "final", "h", line, "ev", string(ev)}}).Err(); err != nil {
		t.Fatal(err)
	}
	recs := e.read(t, "a", false, 10)
	if len(recs) != 1 {
		t.Fatalf("read %d", len(recs))
	}
	r := recs[0]
	if r.Kind != scheduler.RecordFinal || r.App != testApp || r.ID != "old" || r.CreatedMS != created.UnixMilli() ||
		r.UpdatedMS != finished.UnixMilli() || r.Status != scheduler.StatusFailed || r.Attempt == nil ||
		r.Attempt.Attempt != 2 || r.Attempt.StatusCode != 404 {
		t.Fatalf("legacy final = %+v (attempt %+v)", r, r.Attempt)
	}
	if got := r.Event; got == nil || got.Status != scheduler.StatusFailed || string(got.Body) != "old body" ||
		got.URL != "https://x.example/h" || !got.FinishedAt.Equal(finished) || got.Attempts != 2 || len(got.History) != 2 {
		t.Fatalf("legacy final event = %+v", got)
	}
}

// An event that finished, was retried and finished again: archiving the
// first outcome must not start the retention window, since the newer
// outcome is still waiting in the outbox; archiving that one does.
func TestAckOutboxFinishedAgain(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			firstT := e.at(-2 * time.Minute)
			e.create(t, newEvent("twice", firstT, firstT))
			if c := e.claim(t, testWorker, 10, firstT); len(c.Events) != 1 {
				t.Fatalf("claim = %+v", c.Events)
			}
			e.finish(t, "twice", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 400}}, firstT)
			if _, err := e.store.Requeue(ctx, testApp, "twice", retryable, true, e.at(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			secondT := e.at(-30 * time.Second)
			if c := e.claim(t, testWorker, 10, secondT); len(c.Events) != 1 {
				t.Fatalf("second claim = %+v", c.Events)
			}
			e.finish(t, "twice", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 410}}, secondT)

			finals := finalsOf(e.read(t, "a", false, 100))
			if len(finals) != 2 {
				t.Fatalf("finals = %d, want 2", len(finals))
			}
			e.ack(t, finals[:1])
			if n := e.pttl(t, e.evKey("twice")); n != -1 {
				t.Fatalf("PTTL after archiving the older outcome = %d, want -1 (the newer one is not archived)", n)
			}
			e.ack(t, finals[1:])
			if got, want := e.expireTime(t, e.evKey("twice")), secondT.Add(testRetention).UnixMilli(); got != want {
				t.Fatalf("PEXPIRETIME = %d, want second finish + retention %d", got, want)
			}
		})
	}
}

// TestReadOutboxOldFinalEntries: final entries written before the packed
// form (a JSON snapshot 'ev' and the body raw in 'b') still in an outbox
// when the new release starts are read as before.
func TestReadOutboxOldFinalEntries(t *testing.T) {
	t.Parallel()
	e := setupOutbox(t, false)
	ctx := context.Background()
	old := map[string]any{"m": "app/x", "k": "final", "c": "1700000000000", "t": "1700000001000", "s": "FAILED",
		"h":  `{"attempt":1,"at":1700000001000,"status_code":400,"duration_ms":3}`,
		"ev": `["u","https://x/a","d","1700000000000","c","1700000000000","s","FAILED","a","1","lc","400"]`,
		"b":  "\x00body"}
	if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.outKey("x"), Values: old}).Err(); err != nil {
		t.Fatal(err)
	}
	// The previous release's: the hash's fields packed in p (length:bytes
	// each), chunks as stored.
	var packed strings.Builder
	for _, s := range []string{"u", "https://x/a", "d", "1700000000000", "c", "1700000000000", "s", "FAILED",
		"a", "1", "lc", "400", "b", strings.Repeat("x", 64), "b1", "\x00body"} {
		fmt.Fprintf(&packed, "%d:%s", len(s), s)
	}
	prev := maps.Clone(old)
	delete(prev, "ev")
	delete(prev, "b")
	prev["p"] = packed.String()
	if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.outKey("x"), Values: prev}).Err(); err != nil {
		t.Fatal(err)
	}
	// Neither reads the hash: app/x has none.
	recs := e.read(t, "a", false, 10)
	if len(recs) != 2 {
		t.Fatalf("records = %+v", recs)
	}
	for i, body := range []string{"\x00body", strings.Repeat("x", 64) + "\x00body"} {
		r := recs[i]
		if r.Kind != scheduler.RecordFinal || r.Event == nil {
			t.Fatalf("record %d = %+v", i, r)
		}
		ev := r.Event
		if ev.URL != "https://x/a" || string(ev.Body) != body || ev.Attempts != 1 || ev.LastStatusCode != 400 ||
			ev.Status != scheduler.StatusFailed || r.Attempt == nil || r.Attempt.StatusCode != 400 {
			t.Fatalf("old final entry %d read as %+v, event %+v", i, r, ev)
		}
	}
}

// A final entry whose hash is gone (nothing in Cassata deletes one before
// its final entry is archived, but an operator can) still reads: the record
// has no event, and the archive takes the outcome from its attempt.
func TestReadOutboxFinalWithoutHash(t *testing.T) {
	t.Parallel()
	for _, real := range []bool{false, true} {
		t.Run(map[bool]string{false: "miniredis", true: "redis-server"}[real], func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, real)
			ctx := context.Background()
			ev := newEvent("gone", e.now, e.now)
			l := e.createAndClaim(t, ev)
			att := scheduler.Attempt{Attempt: 1, At: e.now.UnixMilli(), StatusCode: 400, Worker: testWorker}
			if ok, err := e.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: att}, e.now); err != nil || !ok {
				t.Fatalf("Finish = %v, %v", ok, err)
			}
			if err := e.rdb.Del(ctx, e.evKey("gone")).Err(); err != nil {
				t.Fatal(err)
			}
			recs := e.read(t, "a", false, 10)
			if len(recs) != 2 || recs[1].Kind != scheduler.RecordFinal {
				t.Fatalf("records = %+v", recs)
			}
			r := recs[1]
			if r.Event != nil || r.Attempt == nil || *r.Attempt != att || r.Status != scheduler.StatusFailed ||
				r.CreatedMS != e.now.UnixMilli() {
				t.Fatalf("final record without its hash = %+v (event %+v)", r, r.Event)
			}
		})
	}
}

// TestAckOutboxDeletesOnlyAcknowledged: archived.lua trims the stream up to
// the group's oldest pending entry and deletes the acknowledged ones past
// it one by one, so whatever order entries are acknowledged in, by
// whichever consumer, exactly the unacknowledged ones stay, readable again.
func TestAckOutboxDeletesOnlyAcknowledged(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			for i := range 9 {
				e.create(t, newEvent(fmt.Sprintf("e%d", i), e.at(time.Hour), e.now))
			}
			out := e.outKey("e0")
			a := e.read(t, "a", false, 6)
			b := e.read(t, "b", false, 3)
			if len(a) != 6 || len(b) != 3 {
				t.Fatalf("read %d and %d", len(a), len(b))
			}
			left := func(want ...string) {
				t.Helper()
				msgs, err := e.rdb.XRange(context.Background(), out, "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range msgs {
					got = append(got, strings.TrimPrefix(m.Values["m"].(string), testApp+"/"))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("entries left %v, want %v", got, want)
				}
			}
			e.ack(t, []scheduler.Record{b[2], b[0], b[1]}) // past a's pending ones, out of order
			left("e0", "e1", "e2", "e3", "e4", "e5")
			e.ack(t, a[2:4]) // in the middle
			left("e0", "e1", "e4", "e5")
			e.ack(t, a[:1]) // the oldest: trims up to the next pending
			left("e1", "e4", "e5")
			if p := e.read(t, "a", true, 10); !slices.Equal(kinds(p), []string{"e1 create", "e4 create", "e5 create"}) {
				t.Fatalf("a's pending entries = %q", kinds(p))
			}
			e.ack(t, a[1:2])
			e.ack(t, a[4:]) // in order, nothing pending: trimmed
			left()
			e.create(t, newEvent("later", e.at(time.Hour), e.now))
			left("later")
			if r := e.read(t, "a", false, 10); len(r) != 1 || r[0].ID != "later" {
				t.Fatalf("after the trim a reads %q", kinds(r))
			}
		})
	}
}

// TestReadOutboxOldCreateEntry: the create entries of earlier releases
// carried their update time, status and method (POST too); they read as
// this release's do.
func TestReadOutboxOldCreateEntry(t *testing.T) {
	t.Parallel()
	e := setupOutbox(t, false)
	old := map[string]any{"m": "app/o", "k": "create", "c": "1700000000000", "t": "1700000000000", "s": "PENDING",
		"u": "https://x/o", "me": "POST", "d": "1700000005000"}
	if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.outKey("o"), Values: old}).Err(); err != nil {
		t.Fatal(err)
	}
	e.create(t, newEvent("n", time.UnixMilli(1700000005000), time.UnixMilli(1700000000000)))
	recs := e.read(t, "a", false, 10)
	if len(recs) != 2 {
		t.Fatalf("records = %+v", recs)
	}
	for _, r := range recs {
		r.StreamID, r.ID, r.Event.ID, r.Event.URL = "", "", "", ""
		if r.Kind != scheduler.RecordCreate || r.CreatedMS != 1700000000000 || r.UpdatedMS != r.CreatedMS ||
			r.Status != scheduler.StatusPending {
			t.Fatalf("record = %+v", r)
		}
		if ev := r.Event; ev.Method != "POST" || ev.Status != scheduler.StatusPending || ev.DueAt.UnixMilli() != 1700000005000 ||
			!ev.UpdatedAt.Equal(ev.CreatedAt) || ev.CreatedAt.UnixMilli() != 1700000000000 {
			t.Fatalf("event = %+v", ev)
		}
	}
	if a, b := *recs[0].Event, *recs[1].Event; !reflect.DeepEqual(a, b) {
		t.Fatalf("old entry's event %+v, new entry's %+v", a, b)
	}
}

func TestCompareStreamIDs(t *testing.T) {
	ids := []string{"0-0", "0-1", "9-0", "10-0", "10-2", "10-10", "1700000000000-0", "1700000000000-99", "1700000000001-3"}
	for i, a := range ids {
		for j, b := range ids {
			if got, want := compareStreamIDs(a, b), cmp.Compare(i, j); got != want {
				t.Errorf("compareStreamIDs(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// retainedEvents finishes events of every kind archived.lua treats apart
// (a delivered one with a short, a long or no body, with headers; failed
// after two attempts; cancelled) and returns their final records as
// ReadOutbox gives them.
func retainedEvents(t *testing.T, e *outboxEnv) []scheduler.Record {
	t.Helper()
	ctx := context.Background()
	at := e.at(-time.Minute)
	bodies := map[string][]byte{
		"short": []byte(`{"order":1}`),
		"long":  []byte(strings.Repeat(`{"line":"a body longer than 127 bytes"}`, 6)),
		"none":  nil,
	}
	for id, body := range bodies {
		ev := newEvent(id, at, at)
		ev.Body, ev.Headers = body, map[string]string{"Content-Type": "application/json"}
		e.create(t, ev)
	}
	e.create(t, newEvent("failed", at, at))
	e.create(t, newEvent("cancelled", e.at(time.Hour), at))
	if c := e.claim(t, testWorker, 10, at); len(c.Events) != 4 {
		t.Fatalf("claim = %d events, want 4", len(c.Events))
	}
	for id := range bodies {
		e.finish(t, id, 1, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 200}}, at)
	}
	e.finish(t, "failed", 1, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Second,
		Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 503}}, at)
	if c := e.claim(t, testWorker, 10, at.Add(time.Second)); len(c.Events) != 1 {
		t.Fatalf("second claim = %d events, want 1", len(c.Events))
	}
	e.finish(t, "failed", 2, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 2, StatusCode: 400}}, at.Add(2*time.Second))
	if _, err := e.store.Cancel(ctx, testApp, "cancelled", at.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	finals := finalsOf(e.read(t, "a", false, 100))
	if len(finals) != 5 {
		t.Fatalf("final records = %d, want 5", len(finals))
	}
	return finals
}

// TestRetainedAgreesWithArchivedLua: what the archiver makes of a finished
// event it read (retained) is, byte for byte, what archived.lua makes of
// it by itself, so acknowledging through either keeps the same value.
func TestRetainedAgreesWithArchivedLua(t *testing.T) {
	t.Parallel()
	compactOnly(t)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			finals := retainedEvents(t, e)
			want := map[string]string{}
			for i, r := range finals {
				if r.Seen == "" {
					t.Fatalf("%s: final record without the value it was read from", r.ID)
				}
				keep, ok := retained(r.Seen, r.UpdatedMS)
				if !ok {
					t.Fatalf("%s: retained(%q) not ok", r.ID, r.Seen)
				}
				if got := r.Status == scheduler.StatusCompleted && r.ID != "none"; got != (len(keep) < len(r.Seen)) {
					t.Fatalf("%s (%s): kept %d of %d bytes", r.ID, r.Status, len(keep), len(r.Seen))
				}
				want[r.ID] = keep
				finals[i].Seen = "" // archived.lua reads and decides itself
			}
			e.ack(t, finals)
			for _, r := range finals {
				got, err := e.rdb.Get(context.Background(), e.evKey(r.ID)).Result()
				if err != nil {
					t.Fatalf("GET %s: %v", r.ID, err)
				}
				if got != want[r.ID] {
					t.Fatalf("%s: archived.lua kept\n%q\nretained made\n%q", r.ID, got, want[r.ID])
				}
				if exp, want := e.expireTime(t, e.evKey(r.ID)), r.UpdatedMS+testRetention.Milliseconds(); exp != want {
					t.Fatalf("%s: PEXPIRETIME %d, want %d", r.ID, exp, want)
				}
			}
		})
	}
}

// TestAckOutboxKeepsWhatTheArchiverRead: acknowledging final records keeps
// what the archiver made of the events it read, with their retention; an
// event that changed since it was read (retried, finished again) is
// decided by archived.lua from what it is now.
func TestAckOutboxKeepsWhatTheArchiverRead(t *testing.T) {
	t.Parallel()
	compactOnly(t)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			finals := retainedEvents(t, e)
			// Retried after the archiver read its final record.
			if _, err := e.store.Requeue(ctx, testApp, "failed", retryable, true, e.at(time.Hour)); err != nil {
				t.Fatal(err)
			}
			// Failed once more after the archiver read the first outcome: a
			// newer one, not yet archived.
			at := e.at(-time.Minute)
			e.create(t, newEvent("again", at, at))
			if c := e.claim(t, testWorker, 10, at); len(c.Events) != 1 {
				t.Fatalf("claim again = %d events", len(c.Events))
			}
			e.finish(t, "again", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 400}}, at)
			againFinal := finalsOf(e.read(t, "a", false, 100))
			if len(againFinal) != 1 || againFinal[0].Seen == "" {
				t.Fatalf("final records of again = %+v", againFinal)
			}
			if _, err := e.store.Requeue(ctx, testApp, "again", retryable, true, at.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if c := e.claim(t, testWorker, 10, at.Add(time.Second)); len(c.Events) != 1 {
				t.Fatalf("claim again = %d events", len(c.Events))
			}
			e.finish(t, "again", 1, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 410}}, at.Add(2*time.Second))

			want := map[string]string{}
			seen := 0
			for _, r := range finals {
				want[r.ID], _ = retained(r.Seen, r.UpdatedMS)
				seen += len(r.Seen)
			}
			sent := &commandCounter{}
			e.rdb.AddHook(sent)
			e.ack(t, append(finals, againFinal...))
			// The values read went back with the records (what spares the
			// script decoding them).
			if n := sent.argBytes.Load(); n < int64(seen) {
				t.Fatalf("acknowledging sent %d bytes of arguments, less than the %d bytes of the values read", n, seen)
			}
			for _, r := range finals {
				if r.ID == "failed" {
					continue
				}
				if got, err := e.rdb.Get(ctx, e.evKey(r.ID)).Result(); err != nil || got != want[r.ID] {
					t.Fatalf("%s: kept %q, %v; want %q", r.ID, got, err, want[r.ID])
				}
				if exp, want := e.expireTime(t, e.evKey(r.ID)), r.UpdatedMS+testRetention.Milliseconds(); exp != want {
					t.Fatalf("%s: PEXPIRETIME %d, want %d", r.ID, exp, want)
				}
			}
			for _, id := range []string{"failed", "again"} {
				if n := e.pttl(t, e.evKey(id)); n != -1 {
					t.Fatalf("%s: PTTL %d, want -1 (changed since it was read)", id, n)
				}
			}
			if got := e.get(t, "failed"); got.Status != scheduler.StatusPending || got.Body != nil && len(got.Body) == 0 {
				t.Fatalf("failed after its retry = %+v", got)
			}
			if got := e.get(t, "again"); got.Status != scheduler.StatusFailed || got.LastStatusCode != 410 {
				t.Fatalf("again = %+v", got)
			}
		})
	}
}

// TestAckOutboxLargeEventsStayInRedis: a finished event larger than
// maxSeen is not sent back to Redis when its record is acknowledged
// (archived.lua decodes it itself), and ends as any other: its body
// dropped, its retention started.
func TestAckOutboxLargeEventsStayInRedis(t *testing.T) {
	t.Parallel()
	compactOnly(t)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := setupOutbox(t, be.real)
			ctx := context.Background()
			at := e.at(-time.Minute)
			ev := newEvent("large", at, at)
			ev.Body = []byte(strings.Repeat("x", 64<<10))
			e.create(t, ev)
			if c := e.claim(t, testWorker, 10, at); len(c.Events) != 1 {
				t.Fatalf("claim = %d events", len(c.Events))
			}
			e.finish(t, "large", 1, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 200}}, at)
			recs := e.read(t, "a", false, 100)
			finals := finalsOf(recs)
			if len(finals) != 1 || len(finals[0].Seen) <= maxSeen {
				t.Fatalf("final records: %d, want one read with its whole event (over %d bytes)", len(finals), maxSeen)
			}
			final := finals[0]
			sent := &commandCounter{}
			e.rdb.AddHook(sent)
			e.ack(t, recs)
			if n := sent.argBytes.Load(); n > maxSeen {
				t.Fatalf("acknowledging sent %d bytes of arguments, want the event left out", n)
			}
			got, err := e.store.Get(ctx, testApp, "large")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != scheduler.StatusCompleted || len(got.Body) != 0 {
				t.Fatalf("large after archiving = %s with %d bytes of body, want COMPLETED without it", got.Status, len(got.Body))
			}
			if exp, want := e.expireTime(t, e.evKey("large")), final.UpdatedMS+testRetention.Milliseconds(); exp != want {
				t.Fatalf("PEXPIRETIME %d, want %d", exp, want)
			}
		})
	}
}

// compactOnly skips a test of compact event values in the pass that runs
// the package with hashes (CASSATA_TEST_EVENT_LAYOUT=1): its namespaces
// would store hashes, which have no such values.
func compactOnly(t *testing.T) {
	t.Helper()
	if testLayout == layoutHash {
		t.Skip("compact event values: run in the default pass")
	}
}

// finalsOf returns the final records of recs.
func finalsOf(recs []scheduler.Record) []scheduler.Record {
	var out []scheduler.Record
	for _, r := range recs {
		if r.Kind == scheduler.RecordFinal {
			out = append(out, r)
		}
	}
	return out
}
