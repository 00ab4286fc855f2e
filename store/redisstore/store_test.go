package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
)

const (
	testNS        = "t"
	testApp       = "app"
	testWorker    = "w1"
	testRetention = time.Hour
	testHorizon   = time.Second
	visibility    = 30 * time.Second
)

// bundle is what most tests need: a store over its own miniredis and a fixed
// clock reading, passed explicitly to every call so that the scripts never
// read the Redis server's clock.
type bundle struct {
	store *Store
	mr    *miniredis.Miniredis
	rdb   *redis.Client
	now   time.Time
}

// testLayout is the event layout (codec.go) of the namespaces setup
// makes: compact, as every new namespace's, or hashes, as those made
// before compact events have, when CASSATA_TEST_EVENT_LAYOUT=1 (make test
// runs this package that way too).
var testLayout = func() int {
	switch os.Getenv("CASSATA_TEST_EVENT_LAYOUT") {
	case "1":
		return layoutHash
	case "2":
		return layoutCompact
	case "3":
		return layoutPacked
	}
	return layoutNewest
}()

// setup starts a miniredis and a one-shard store (so that every event shares
// the due set and ordering can be observed), unless cfg says otherwise,
// storing events in testLayout unless cfg names a layout.
func setup(t *testing.T, cfg ...Config) *bundle {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c := Config{Namespace: testNS, Shards: 1, Retention: testRetention, WakeHorizon: testHorizon}
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.EventLayout = cmp.Or(c.EventLayout, testLayout)
	st, err := New(context.Background(), rdb, c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &bundle{store: st, mr: mr, rdb: rdb, now: time.UnixMilli(1_700_000_000_000).UTC()}
}

// stored reads event id as stored, in either layout: field name → value,
// long values whole (no chunks); nil when there is none.
func (b *bundle) stored(t *testing.T, id string) map[string]string {
	t.Helper()
	return storedValues(t, b.rdb, b.evKey(id))
}

// storedValues reads event key as stored, in either layout (codec.go):
// field name → value, long values whole; nil when there is none.
func storedValues(t *testing.T, rdb redis.UniversalClient, key string) map[string]string {
	t.Helper()
	ctx := context.Background()
	var vals []any
	switch typ, err := rdb.Type(ctx, key).Result(); {
	case err != nil:
		t.Fatal(err)
	case typ == "none":
		return nil
	case typ == "string":
		v, err := rdb.Get(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if vals, err = compactValues(v); err != nil {
			t.Fatal(err)
		}
	default:
		h, err := rdb.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		vals = hashValues(h)
	}
	out := map[string]string{}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[name(i)] = s
		}
	}
	return out
}

// at returns the fixed clock moved by d.
func (b *bundle) at(d time.Duration) time.Time { return b.now.Add(d) }

// evKey and friends spell out the key layout of DESIGN.md literally, so the
// tests check it rather than reuse the code under test.
func (b *bundle) prefix(app, id string) string {
	s := int(crc32.ChecksumIEEE([]byte(app+"/"+id)) % uint32(b.store.Shards()))
	return fmt.Sprintf("%s:{%s:%d}", b.store.Namespace(), b.store.Namespace(), s)
}
func (b *bundle) evKey(id string) string    { return b.prefix(testApp, id) + ":ev:" + testApp + "/" + id }
func (b *bundle) dueKey(id string) string   { return b.prefix(testApp, id) + ":due" }
func (b *bundle) leaseKey(id string) string { return b.prefix(testApp, id) + ":lease" }
func (b *bundle) outKey(id string) string   { return b.prefix(testApp, id) + ":out" }
func (b *bundle) claimsKey(id, worker string) string {
	return b.prefix(testApp, id) + ":claims:" + worker
}

// claimRecords is the members each of worker's claim records (claim.lua)
// in the shard of event id names, sorted.
func (b *bundle) claimRecords(t *testing.T, id, worker string) [][]string {
	t.Helper()
	recs, err := b.rdb.HGetAll(context.Background(), b.claimsKey(id, worker)).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for n, rec := range recs {
		f := strings.Fields(rec)
		if len(f) < 2 {
			t.Fatalf("claim record %s = %q: want a time and members", n, rec)
		}
		out = append(out, f[1:])
	}
	slices.SortFunc(out, slices.Compare)
	return out
}

func newEvent(id string, due time.Time, created time.Time) *scheduler.Event {
	return &scheduler.Event{
		App: testApp, ID: id, URL: "https://example.com/hook/" + id, Method: "POST",
		DueAt: due, Status: scheduler.StatusPending, CreatedAt: created, UpdatedAt: created,
	}
}

func (b *bundle) create(t *testing.T, ev *scheduler.Event) {
	t.Helper()
	existing, err := b.store.Create(context.Background(), ev, b.now)
	if err != nil {
		t.Fatalf("Create %s: %v", ev.ID, err)
	}
	if existing != nil {
		t.Fatalf("Create %s: identity unexpectedly taken", ev.ID)
	}
}

func (b *bundle) get(t *testing.T, id string) *scheduler.Event {
	t.Helper()
	ev, err := b.store.Get(context.Background(), testApp, id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return ev
}

func (b *bundle) claim(t *testing.T, worker string, batch int, now time.Time) scheduler.Claim {
	t.Helper()
	c, err := b.store.Claim(context.Background(), 0, worker, batch, visibility, now)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return c
}

// createAndClaim creates one due event and claims it as testWorker at b.now.
func (b *bundle) createAndClaim(t *testing.T, ev *scheduler.Event) scheduler.Lease {
	t.Helper()
	b.create(t, ev)
	c := b.claim(t, testWorker, 10, b.now)
	if len(c.Events) != 1 || c.Events[0].ID != ev.ID {
		t.Fatalf("claim: got %d events, want %s", len(c.Events), ev.ID)
	}
	return scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: c.Events[0].Attempts}
}

func ids(evs []*scheduler.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func zscore(t *testing.T, mr *miniredis.Miniredis, key, member string) (float64, bool) {
	t.Helper()
	if !mr.Exists(key) {
		return 0, false
	}
	members, err := mr.ZMembers(key)
	if err != nil {
		t.Fatalf("ZMembers %s: %v", key, err)
	}
	if !slices.Contains(members, member) {
		return 0, false
	}
	s, err := mr.ZScore(key, member)
	if err != nil {
		t.Fatalf("ZScore %s %s: %v", key, member, err)
	}
	return s, true
}

func streamEntries(t *testing.T, mr *miniredis.Miniredis, key string) []map[string]string {
	t.Helper()
	if !mr.Exists(key) {
		return nil
	}
	entries, err := mr.Stream(key)
	if err != nil {
		t.Fatalf("Stream %s: %v", key, err)
	}
	var out []map[string]string
	for _, e := range entries {
		m := map[string]string{}
		for i := 0; i+1 < len(e.Values); i += 2 {
			m[e.Values[i]] = e.Values[i+1]
		}
		out = append(out, unpackEntry(t, m)...)
	}
	return out
}

// unpackEntry returns the fields of outbox entry v, or, for a packed
// entry (prelude.lua xadd_packed), those of the entry of its own each of
// its records would have been: a test's own reading of the format.
func unpackEntry(t *testing.T, v map[string]string) []map[string]string {
	t.Helper()
	kind := v["k"]
	if kind != packedCreates && kind != packedFinals {
		return []map[string]string{v}
	}
	lines := strings.Split(strings.TrimSuffix(v["e"], "\n"), "\n")
	per := 2
	if kind == packedFinals {
		per = 4
	}
	if len(lines)%per != 0 || strconv.Itoa(len(lines)/per) != v["n"] {
		t.Fatalf("packed entry %v: %d lines", v, len(lines))
	}
	var out []map[string]string
	for i := 0; i < len(lines); i += per {
		m := map[string]string{"m": lines[i]}
		if kind == packedCreates {
			f := strings.SplitN(lines[i+1], " ", 5)
			if len(f) != 5 {
				t.Fatalf("packed create %q", lines[i+1])
			}
			m["k"], m["c"], m["d"], m["u"] = "create", f[0], f[1], f[4]
			if f[2] != "" {
				m["me"] = f[2]
			}
			if f[3] != "" {
				m["fk"] = f[3]
			}
		} else {
			f := strings.Split(lines[i+1], " ")
			if len(f) != 6 {
				t.Fatalf("packed final %q", lines[i+1])
			}
			m["k"], m["c"], m["t"], m["s"], m["lc"], m["h"], m["le"] = "final", f[0], f[1], f[2], f[4], lines[i+2], lines[i+3]
			if f[3] != "" {
				m["a"] = f[3]
			}
			if f[5] != "" {
				m["d"] = f[5]
			}
		}
		out = append(out, m)
	}
	return out
}

// outboxEntry is an outbox entry as unpackEntry gives it, with the id of
// the entry it is in.
type outboxEntry struct {
	ID     string
	Values map[string]string
}

// outboxEntries reads stream key with XRANGE into unpacked entries.
func outboxEntries(t *testing.T, rdb redis.UniversalClient, key string) []outboxEntry {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	var out []outboxEntry
	for _, msg := range msgs {
		v := map[string]string{}
		for k, x := range msg.Values {
			v[k], _ = x.(string)
		}
		for _, u := range unpackEntry(t, v) {
			out = append(out, outboxEntry{ID: msg.ID, Values: u})
		}
	}
	return out
}

// noExpiry asserts that key exists and has no TTL (PTTL -1): a finished
// event's hash only gets its expiry once the archiver has archived it.
func (b *bundle) noExpiry(t *testing.T, key string) {
	t.Helper()
	n, err := b.rdb.Do(context.Background(), "PTTL", key).Int64()
	if err != nil || n != -1 {
		t.Fatalf("PTTL %s = %d, %v; want -1 (exists, no expiry)", key, n, err)
	}
}

// ms formats a time as the scripts write it.
func msStr(tm time.Time) string { return strconv.FormatInt(tm.UnixMilli(), 10) }

// checkEntry asserts an outbox entry has exactly the fields of want (same
// names, same values). Fields named in skip must be present but their
// values are checked by the caller (h: JSON).
func checkEntry(t *testing.T, e, want map[string]string, skip ...string) {
	t.Helper()
	got := maps.Clone(e)
	for _, k := range skip {
		if _, ok := got[k]; !ok {
			t.Fatalf("outbox entry %v: field %q missing", e, k)
		}
		delete(got, k)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("outbox entry = %v\n want fields %v (plus %q)", e, want, skip)
	}
}

// finalOf asserts that a final outbox entry carries how the run ended and
// not the event (no p, ev or b: prelude.lua xadd_final), and returns the
// event the archiver reads for it (withEvents: from the hash), with wantBody
// as its body and without the history.
func finalOf(t *testing.T, b *bundle, entry map[string]string, wantBody string) *scheduler.Event {
	t.Helper()
	for _, f := range []string{"p", "ev", "b"} {
		if _, ok := entry[f]; ok {
			t.Fatalf("final entry carries %q: %v", f, entry)
		}
	}
	values := map[string]any{}
	for k, v := range entry {
		values[k] = v
	}
	recs, err := b.store.records(context.Background(), b.store.k.shard(entry["m"]),
		[]redis.XMessage{{ID: "1-1", Values: values}})
	if err != nil || len(recs) != 1 || recs[0].Event == nil {
		t.Fatalf("final record of %v = %+v, %v", entry, recs, err)
	}
	ev := recs[0].Event
	if string(ev.Body) != wantBody || len(ev.History) != 0 {
		t.Fatalf("final event body = %q, want %q; history %v", ev.Body, wantBody, ev.History)
	}
	return ev
}

// wakeups subscribes to the wake-up channel. drain returns the messages
// published so far: it publishes a marker and reads up to it, so "no wake-up"
// is checked without waiting on a timer.
type wakeups struct {
	t   *testing.T
	rdb *redis.Client
	ch  string
	sub *redis.PubSub
}

func (b *bundle) subscribe(t *testing.T) *wakeups {
	t.Helper()
	ctx := context.Background()
	ch := b.store.Namespace() + ":wake"
	sub := b.rdb.Subscribe(ctx, ch)
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatalf("subscribe: %v", err)
	}
	return &wakeups{t: t, rdb: b.rdb, ch: ch, sub: sub}
}

func (w *wakeups) drain() []string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const marker = "--marker--"
	if err := w.rdb.Publish(ctx, w.ch, marker).Err(); err != nil {
		w.t.Fatalf("publish marker: %v", err)
	}
	var got []string
	for {
		msg, err := w.sub.ReceiveMessage(ctx)
		if err != nil {
			w.t.Fatalf("receive: %v", err)
		}
		if msg.Payload == marker {
			return got
		}
		got = append(got, msg.Payload)
	}
}

func TestNewRecordsShardCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	st, err := New(ctx, rdb, Config{Namespace: "ns"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if st.Shards() != DefaultShards || mr.HGet("ns:meta", "shards") != strconv.Itoa(DefaultShards) {
		t.Fatalf("shards = %d, meta = %q; want %d recorded", st.Shards(), mr.HGet("ns:meta", "shards"), DefaultShards)
	}
	// Zero adopts what is recorded; the same count is fine.
	for _, n := range []int{0, DefaultShards} {
		st, err := New(ctx, rdb, Config{Namespace: "ns", Shards: n})
		if err != nil || st.Shards() != DefaultShards {
			t.Fatalf("New(Shards: %d) = %v, %v; want %d shards", n, st, err, DefaultShards)
		}
	}
	// A different count would orphan events.
	if _, err := New(ctx, rdb, Config{Namespace: "ns", Shards: 8}); err == nil {
		t.Fatalf("New with 8 shards on a 16-shard namespace: no error")
	}
	if got := mr.HGet("ns:meta", "shards"); got != "16" {
		t.Fatalf("meta shards changed to %q", got)
	}
	// Another namespace keeps its own count.
	st, err = New(ctx, rdb, Config{Namespace: "other", Shards: 4})
	if err != nil || st.Shards() != 4 || mr.HGet("other:meta", "shards") != "4" {
		t.Fatalf("New(other, 4) = %v, meta %q", err, mr.HGet("other:meta", "shards"))
	}
}

func TestKeyLayout(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Namespace: "cas", Shards: 16, Retention: testRetention})
	ctx := context.Background()
	const app, id = "billing", "inv-42"
	s := crc32.ChecksumIEEE([]byte(app+"/"+id)) % 16
	p := fmt.Sprintf("cas:{cas:%d}", s)

	ev := newEvent(id, b.now, b.now)
	ev.App = app
	if _, err := b.store.Create(ctx, ev, b.now); err != nil {
		t.Fatal(err)
	}
	// The create is in the outbox too (the archive knows live events).
	wantKeys := []string{"cas:meta", p + ":due", p + ":ev:billing/inv-42", p + ":out"}
	if got := b.mr.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys after create = %q, want %q", got, wantKeys)
	}
	if score, ok := zscore(t, b.mr, p+":due", "billing/inv-42"); !ok || int64(score) != b.now.UnixMilli() {
		t.Fatalf("due score = %v, %v; want %d", score, ok, b.now.UnixMilli())
	}

	c, err := b.store.Claim(ctx, int(s), "wk", 10, visibility, b.now)
	if err != nil || len(c.Events) != 1 {
		t.Fatalf("claim shard %d: %v, %d events", s, err, len(c.Events))
	}
	wantKeys = []string{"cas:meta", p + ":claims:wk", p + ":ev:billing/inv-42", p + ":lease", p + ":out"}
	if got := b.mr.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys after claim = %q, want %q", got, wantKeys)
	}

	l := scheduler.Lease{App: app, ID: id, Worker: "wk", Attempt: 1}
	if ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted,
		Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 200}}, b.now); !ok || err != nil {
		t.Fatalf("Finish = %v, %v", ok, err)
	}
	// The claim record stays until the worker's next claim of the shard
	// says its reply came.
	wantKeys = []string{"cas:meta", p + ":claims:wk", p + ":ev:billing/inv-42", p + ":out"}
	if got := b.mr.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys after finish = %q, want %q", got, wantKeys)
	}
	if c, err := b.store.Claim(ctx, int(s), "wk", 10, visibility, b.now); err != nil || len(c.Events) != 0 {
		t.Fatalf("claim again: %v, %d events", err, len(c.Events))
	}
	wantKeys = []string{"cas:meta", p + ":ev:billing/inv-42", p + ":out"}
	if got := b.mr.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys after the next claim = %q, want %q", got, wantKeys)
	}
}

func TestShardIsCRC32ModShards(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Namespace: "ns", Shards: 7})
	seen := map[int]bool{}
	for i := range 50 {
		id := "e" + strconv.Itoa(i)
		b.create(t, newEvent(id, b.now, b.now))
		s := int(crc32.ChecksumIEEE([]byte(testApp+"/"+id)) % 7)
		seen[s] = true
		key := fmt.Sprintf("ns:{ns:%d}:ev:%s/%s", s, testApp, id)
		if !b.mr.Exists(key) {
			t.Fatalf("%s: want hash at %s", id, key)
		}
	}
	if len(seen) < 2 {
		t.Fatalf("50 events landed on %d shard(s)", len(seen))
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()

	t.Run("new event stores only what differs from the defaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := newEvent("plain", b.at(time.Minute), b.now)
		b.create(t, ev)

		fields := slices.Sorted(maps.Keys(b.stored(t, "plain")))
		if want := []string{"c", "d", "u"}; !slices.Equal(fields, want) {
			t.Fatalf("pending event's fields = %q, want only %q (no s, m, x, to, bn, bx, h, b, a)", fields, want)
		}
		if score, ok := zscore(t, b.mr, b.dueKey("plain"), "app/plain"); !ok || int64(score) != b.at(time.Minute).UnixMilli() {
			t.Fatalf("due score = %v, %v", score, ok)
		}

		got := b.get(t, "plain")
		if got.Status != scheduler.StatusPending || got.Method != "POST" || got.URL != ev.URL ||
			!got.DueAt.Equal(ev.DueAt) || !got.CreatedAt.Equal(b.now) || got.Attempts != 0 ||
			got.MaxAttempts != 0 || got.Timeout != 0 || got.Body != nil || got.Headers != nil {
			t.Fatalf("Get = %+v", got)
		}
	})

	t.Run("overrides are stored and read back", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := newEvent("full", b.at(time.Minute), b.now)
		ev.Method = "PUT"
		ev.Headers = map[string]string{"X-A": "1", "Content-Type": "text/plain"}
		ev.Body = []byte("hello\x00world")
		ev.MaxAttempts = 3
		ev.Timeout = 2 * time.Second
		ev.MinBackoff = 5 * time.Second
		ev.MaxBackoff = time.Minute
		b.create(t, ev)

		stored := b.stored(t, "full")
		fields := slices.Sorted(maps.Keys(stored))
		if want := []string{"b", "bn", "bx", "c", "d", "h", "m", "to", "u", "x"}; !slices.Equal(fields, want) {
			t.Fatalf("event's fields = %q, want %q", fields, want)
		}
		want := "Content-Type:text/plain\nX-A:1" // sorted Name:Value lines
		if b.store.EventLayout() >= layoutTabled {
			want = "\x84X-A:1" // a line of headerTable as its code
		}
		if h := stored["h"]; h != want {
			t.Fatalf("headers stored as %q, want %q", h, want)
		}
		got := b.get(t, "full")
		if got.Method != "PUT" || string(got.Body) != "hello\x00world" || got.Headers["X-A"] != "1" ||
			got.Headers["Content-Type"] != "text/plain" || got.MaxAttempts != 3 || got.Timeout != 2*time.Second ||
			got.MinBackoff != 5*time.Second || got.MaxBackoff != time.Minute {
			t.Fatalf("Get = %+v", got)
		}
	})

	t.Run("duplicate returns the existing event and stores nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := newEvent("dup", b.at(time.Minute), b.now)
		first.Body = []byte("one")
		b.create(t, first)

		second := newEvent("dup", b.at(time.Hour), b.at(time.Second))
		second.URL = "https://other.example/"
		second.Body = []byte("two")
		existing, err := b.store.Create(context.Background(), second, b.at(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if existing == nil || existing.URL != first.URL || string(existing.Body) != "one" ||
			!existing.DueAt.Equal(first.DueAt) || existing.Status != scheduler.StatusPending {
			t.Fatalf("existing = %+v, want the first event", existing)
		}
		if got := b.get(t, "dup"); got.URL != first.URL || string(got.Body) != "one" {
			t.Fatalf("stored event changed: %+v", got)
		}
		if score, _ := zscore(t, b.mr, b.dueKey("dup"), "app/dup"); int64(score) != first.DueAt.UnixMilli() {
			t.Fatalf("due score changed to %v", score)
		}
	})
}

func TestCreateWakeup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing []time.Duration // due offsets of events already in the shard
		due      time.Duration
		wake     bool
	}{
		{name: "empty shard, due within the horizon", due: 500 * time.Millisecond, wake: true},
		{name: "empty shard, due now", due: 0, wake: true},
		{name: "empty shard, overdue", due: -time.Minute, wake: true},
		{name: "empty shard, due beyond the horizon", due: 5 * time.Second, wake: false},
		{name: "empty shard, due exactly at the horizon", due: testHorizon, wake: false},
		{name: "becomes the earliest", existing: []time.Duration{900 * time.Millisecond}, due: 200 * time.Millisecond, wake: true},
		{name: "not the earliest", existing: []time.Duration{100 * time.Millisecond}, due: 500 * time.Millisecond, wake: false},
		{name: "ties the earliest", existing: []time.Duration{300 * time.Millisecond}, due: 300 * time.Millisecond, wake: false},
		{name: "earliest but beyond the horizon", existing: []time.Duration{time.Hour}, due: time.Minute, wake: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for i, d := range tt.existing {
				b.create(t, newEvent("old"+strconv.Itoa(i), b.at(d), b.now))
			}
			w := b.subscribe(t)
			b.create(t, newEvent("new", b.at(tt.due), b.now))
			got := w.drain()
			if tt.wake && !slices.Equal(got, []string{"0"}) {
				t.Fatalf("wake-ups = %q, want one naming shard 0", got)
			}
			if !tt.wake && len(got) != 0 {
				t.Fatalf("wake-ups = %q, want none", got)
			}
		})
	}

	t.Run("duplicate publishes nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("x", b.at(time.Hour), b.now))
		w := b.subscribe(t)
		if _, err := b.store.Create(context.Background(), newEvent("x", b.now, b.now), b.now); err != nil {
			t.Fatal(err)
		}
		if got := w.drain(); len(got) != 0 {
			t.Fatalf("wake-ups = %q, want none", got)
		}
	})

	t.Run("names the event's shard", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Namespace: "ns", Shards: 16, WakeHorizon: testHorizon})
		w := b.subscribe(t)
		b.create(t, newEvent("abc", b.now, b.now))
		want := strconv.Itoa(int(crc32.ChecksumIEEE([]byte("app/abc")) % 16))
		if got := w.drain(); !slices.Equal(got, []string{want}) {
			t.Fatalf("wake-ups = %q, want [%s]", got, want)
		}
	})
}

func TestClaim(t *testing.T) {
	t.Parallel()

	t.Run("due order, batch limit, fields, lease", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Created out of due order.
		for _, e := range []struct {
			id  string
			due time.Duration
		}{{"c", -time.Second}, {"a", -time.Minute}, {"later", time.Millisecond}, {"b", -30 * time.Second}, {"d", 0}, {"far", time.Hour}} {
			b.create(t, newEvent(e.id, b.at(e.due), b.at(-time.Hour)))
		}

		c := b.claim(t, testWorker, 3, b.now)
		if got := ids(c.Events); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("claimed %q, want [a b c] (due order, batch 3)", got)
		}
		if !c.Now.Equal(b.now) {
			t.Fatalf("Now = %v, want the injected %v", c.Now, b.now)
		}
		if !c.NextDue.Equal(b.now) {
			t.Fatalf("NextDue = %v, want %v (d, due now)", c.NextDue, b.now)
		}
		for _, ev := range c.Events {
			if ev.Status != scheduler.StatusProcessing || ev.Attempts != 1 {
				t.Fatalf("%s: status %s attempts %d", ev.ID, ev.Status, ev.Attempts)
			}
			if score, ok := zscore(t, b.mr, b.leaseKey(ev.ID), "app/"+ev.ID); !ok || int64(score) != b.at(visibility).UnixMilli() {
				t.Fatalf("%s: lease = %v, %v; want now+visibility", ev.ID, score, ok)
			}
			if _, ok := zscore(t, b.mr, b.dueKey(ev.ID), "app/"+ev.ID); ok {
				t.Fatalf("%s: still in due", ev.ID)
			}
			stored := b.get(t, ev.ID)
			if stored.Status != scheduler.StatusProcessing || stored.Attempts != 1 || stored.Worker != testWorker {
				t.Fatalf("%s stored: %+v", ev.ID, stored)
			}
		}
		// One claim record names them all.
		if recs := b.claimRecords(t, "a", testWorker); len(recs) != 1 || !slices.Equal(recs[0], []string{"app/a", "app/b", "app/c"}) {
			t.Fatalf("claim records = %q", recs)
		}

		// Next round: d is due now (inclusive), "later" is due 1 ms after now.
		c = b.claim(t, testWorker, 10, b.now)
		if got := ids(c.Events); !slices.Equal(got, []string{"d"}) {
			t.Fatalf("second claim = %q, want [d]: never an event due 1 ms after now", got)
		}
		if !c.NextDue.Equal(b.at(time.Millisecond)) {
			t.Fatalf("NextDue = %v, want %v", c.NextDue, b.at(time.Millisecond))
		}
		if got := b.get(t, "later"); got.Status != scheduler.StatusPending || got.Attempts != 0 {
			t.Fatalf("not-yet-due event touched: %+v", got)
		}

		c = b.claim(t, "w2", 10, b.at(time.Millisecond))
		if got := ids(c.Events); !slices.Equal(got, []string{"later"}) {
			t.Fatalf("claim 1 ms later = %q, want [later]", got)
		}
		if recs := b.claimRecords(t, "later", "w2"); len(recs) != 1 || !slices.Equal(recs[0], []string{"app/later"}) {
			t.Fatalf("w2 claim records = %q", recs)
		}
		if !c.NextDue.Equal(b.at(time.Hour)) {
			t.Fatalf("NextDue = %v, want far", c.NextDue)
		}

		// Only "far" is left; nothing due, NextDue says when.
		c = b.claim(t, testWorker, 10, b.at(time.Second))
		if len(c.Events) != 0 || !c.NextDue.Equal(b.at(time.Hour)) {
			t.Fatalf("idle claim = %d events, NextDue %v", len(c.Events), c.NextDue)
		}
		c = b.claim(t, testWorker, 10, b.at(2*time.Hour))
		if len(c.Events) != 1 || !c.NextDue.IsZero() {
			t.Fatalf("last claim = %d events, NextDue %v; want 1 and zero", len(c.Events), c.NextDue)
		}
	})

	t.Run("returns what the worker needs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := newEvent("full", b.at(-time.Second), b.at(-time.Minute))
		ev.Method = "PATCH"
		ev.Headers = map[string]string{"X-Trace": "abc"}
		ev.Body = []byte(`{"k":1}`)
		ev.MaxAttempts = 7
		ev.Timeout = 3 * time.Second
		ev.MinBackoff = 2 * time.Second
		ev.MaxBackoff = 20 * time.Second
		b.create(t, ev)

		c := b.claim(t, testWorker, 10, b.now)
		if len(c.Events) != 1 {
			t.Fatalf("claimed %d", len(c.Events))
		}
		got := c.Events[0]
		if got.App != testApp || got.ID != "full" || got.URL != ev.URL || got.Method != "PATCH" ||
			got.Headers["X-Trace"] != "abc" || string(got.Body) != `{"k":1}` || got.MaxAttempts != 7 ||
			got.Timeout != 3*time.Second || got.MinBackoff != 2*time.Second || got.MaxBackoff != 20*time.Second ||
			!got.DueAt.Equal(ev.DueAt) || !got.CreatedAt.Equal(ev.CreatedAt) || got.Attempts != 1 {
			t.Fatalf("claimed event = %+v", got)
		}
	})

	t.Run("defaults come back as zero values", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("plain", b.now, b.now))
		c := b.claim(t, testWorker, 10, b.now)
		got := c.Events[0]
		if got.Method != "POST" || got.Body != nil || got.Headers != nil || got.MaxAttempts != 0 || got.Timeout != 0 {
			t.Fatalf("claimed event = %+v", got)
		}
	})

	t.Run("attempts count up across claims", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.createAndClaim(t, newEvent("e", b.now, b.now))
		if ok, err := b.store.Finish(context.Background(), l, scheduler.Outcome{Status: scheduler.StatusPending,
			Backoff: time.Second, Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 500}}, b.now); !ok || err != nil {
			t.Fatalf("Finish = %v, %v", ok, err)
		}
		c := b.claim(t, testWorker, 10, b.at(time.Second))
		if len(c.Events) != 1 || c.Events[0].Attempts != 2 {
			t.Fatalf("second claim: %d events, attempts %v", len(c.Events), c.Events)
		}
	})
}

func TestFinishSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ev := newEvent("ok", b.now, b.now)
	ev.Body = []byte("payload")
	l := b.createAndClaim(t, ev)

	done := b.at(250 * time.Millisecond)
	att := scheduler.Attempt{Attempt: 1, At: done.UnixMilli(), StatusCode: 204, DurationMS: 250, Worker: testWorker}
	ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: att}, done)
	if err != nil || !ok {
		t.Fatalf("Finish = %v, %v", ok, err)
	}

	got := b.get(t, "ok")
	// The body stays until the archive has it (archived.lua drops it).
	if got.Status != scheduler.StatusCompleted || string(got.Body) != "payload" || got.BodyDropped ||
		got.LastStatusCode != 204 || got.LastError != "" || got.Attempts != 1 ||
		!got.FinishedAt.Equal(done) || !got.UpdatedAt.Equal(done) {
		t.Fatalf("event = %+v", got)
	}
	if len(got.History) != 1 || got.History[0] != att {
		t.Fatalf("history = %+v, want [%+v]", got.History, att)
	}
	// No expiry until the archiver has archived the outcome (archived.lua).
	b.noExpiry(t, b.evKey("ok"))
	if b.mr.Exists(b.leaseKey("ok")) || b.mr.Exists(b.dueKey("ok")) {
		t.Fatalf("lease or due left behind: keys %q", b.mr.Keys())
	}

	out := streamEntries(t, b.mr, b.outKey("ok"))
	if len(out) != 2 {
		t.Fatalf("outbox = %v, want the create and one final entry", out)
	}
	// A create entry leaves out what the reader knows: its update time (c),
	// its status (PENDING) and the method when it is POST.
	checkEntry(t, out[0], map[string]string{"m": "app/ok", "k": "create", "c": msStr(b.now), "u": ev.URL,
		"d": msStr(b.now)})
	e := out[1]
	// The entry says how the run ended; the archiver reads the event,
	// body included, from the hash, which keeps it until then.
	checkEntry(t, e, map[string]string{"m": "app/ok", "k": "final", "c": msStr(b.now), "t": msStr(done),
		"s": "COMPLETED", "a": "1", "lc": "204", "le": "", "d": msStr(b.now)}, "h")
	var h scheduler.Attempt
	if err := json.Unmarshal([]byte(e["h"]), &h); err != nil || h != att {
		t.Fatalf("outbox history line = %q (%v)", e["h"], err)
	}
	fin := finalOf(t, b, e, "payload")
	if fin.Status != scheduler.StatusCompleted || fin.URL != ev.URL || fin.LastStatusCode != 204 ||
		!fin.FinishedAt.Equal(done) || !fin.UpdatedAt.Equal(done) || fin.Attempts != 1 ||
		!fin.CreatedAt.Equal(b.now) || fin.Worker != testWorker {
		t.Fatalf("final event = %+v", fin)
	}
}

func TestFinishRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ev := newEvent("re", b.now, b.now)
	ev.Body = []byte("payload")
	l := b.createAndClaim(t, ev)

	done := b.at(time.Second)
	att := scheduler.Attempt{Attempt: 1, At: done.UnixMilli(), StatusCode: 503, DurationMS: 12, Worker: testWorker, Response: "busy"}
	w := b.subscribe(t)
	ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: 700 * time.Millisecond, Attempt: att}, done)
	if err != nil || !ok {
		t.Fatalf("Finish = %v, %v", ok, err)
	}
	due := done.Add(700 * time.Millisecond)
	got := b.get(t, "re")
	if got.Status != scheduler.StatusPending || !got.DueAt.Equal(due) || got.Attempts != 1 ||
		string(got.Body) != "payload" || got.LastStatusCode != 503 || got.Worker != "" || !got.FinishedAt.IsZero() {
		t.Fatalf("event = %+v", got)
	}
	if len(got.History) != 1 || got.History[0] != att {
		t.Fatalf("history = %+v", got.History)
	}
	if score, ok := zscore(t, b.mr, b.dueKey("re"), "app/re"); !ok || int64(score) != due.UnixMilli() {
		t.Fatalf("due score = %v, %v; want now+backoff", score, ok)
	}
	if ttl := b.mr.TTL(b.evKey("re")); ttl != 0 {
		t.Fatalf("a retrying event must not expire: TTL %v", ttl)
	}
	b.noExpiry(t, b.evKey("re"))
	if b.mr.Exists(b.leaseKey("re")) {
		t.Fatalf("lease left behind: %q", b.mr.Keys())
	}
	out := streamEntries(t, b.mr, b.outKey("re"))
	if len(out) != 2 || out[0]["k"] != "create" {
		t.Fatalf("outbox = %v, want the create and one attempt entry", out)
	}
	checkEntry(t, out[1], map[string]string{"m": "app/re", "k": "attempt", "c": msStr(b.now), "t": msStr(done),
		"s": "PENDING", "d": msStr(due)}, "h")
	var h scheduler.Attempt
	if err := json.Unmarshal([]byte(out[1]["h"]), &h); err != nil || h != att {
		t.Fatalf("outbox history line = %q (%v)", out[1]["h"], err)
	}
	// The shard was empty and the retry is due within the horizon.
	if got := w.drain(); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("wake-ups = %q", got)
	}

	// A second failed attempt appends to the history.
	c := b.claim(t, testWorker, 10, due)
	if len(c.Events) != 1 || c.Events[0].Attempts != 2 {
		t.Fatalf("reclaim: %+v", c.Events)
	}
	l.Attempt = 2
	att2 := scheduler.Attempt{Attempt: 2, At: due.UnixMilli(), Error: "connection refused", Worker: testWorker}
	if ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Hour, Attempt: att2}, due); !ok || err != nil {
		t.Fatalf("Finish 2 = %v, %v", ok, err)
	}
	got = b.get(t, "re")
	if len(got.History) != 2 || got.History[1] != att2 || got.LastError != "connection refused" || got.LastStatusCode != 0 || got.Attempts != 2 {
		t.Fatalf("after 2nd retry: %+v", got)
	}
	// Due an hour out: beyond the horizon, no wake-up.
	if got := w.drain(); len(got) != 0 {
		t.Fatalf("wake-ups = %q, want none", got)
	}
}

func TestFinishFinalFailure(t *testing.T) {
	t.Parallel()
	for _, st := range []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ev := newEvent("f", b.now, b.now)
			ev.Body = []byte("keep me")
			l := b.createAndClaim(t, ev)
			att := scheduler.Attempt{Attempt: 1, At: b.now.UnixMilli(), StatusCode: 404, Worker: testWorker}
			if st == scheduler.StatusServiceUnavailable {
				att = scheduler.Attempt{Attempt: 1, At: b.now.UnixMilli(), Error: "timeout after 30s", Worker: testWorker}
			}
			code := "" // no status code: an empty lc
			if att.StatusCode > 0 {
				code = strconv.Itoa(att.StatusCode)
			}
			ok, err := b.store.Finish(context.Background(), l, scheduler.Outcome{Status: st, Attempt: att}, b.now)
			if err != nil || !ok {
				t.Fatalf("Finish = %v, %v", ok, err)
			}
			got := b.get(t, "f")
			if got.Status != st || string(got.Body) != "keep me" || got.BodyDropped || len(got.History) != 1 ||
				got.LastStatusCode != att.StatusCode || got.LastError != att.Error || !got.FinishedAt.Equal(b.now) {
				t.Fatalf("event = %+v", got)
			}
			b.noExpiry(t, b.evKey("f"))
			out := streamEntries(t, b.mr, b.outKey("f"))
			if len(out) != 2 || out[0]["k"] != "create" || out[1]["k"] != "final" || finalOf(t, b, out[1], "keep me").Status != st {
				t.Fatalf("outbox = %v", out)
			}
			checkEntry(t, out[1], map[string]string{"m": "app/f", "k": "final", "c": msStr(b.now), "t": msStr(b.now),
				"s": string(st), "a": "1", "lc": code, "le": att.Error, "d": msStr(b.now)}, "h")
			var h scheduler.Attempt
			if err := json.Unmarshal([]byte(out[1]["h"]), &h); err != nil || h != att {
				t.Fatalf("outbox history line = %q (%v)", out[1]["h"], err)
			}
			if b.mr.Exists(b.leaseKey("f")) {
				t.Fatalf("lease left behind: %q", b.mr.Keys())
			}
		})
	}
}

func TestLeaseCheck(t *testing.T) {
	t.Parallel()
	leases := []struct {
		name  string
		lease func(scheduler.Lease) scheduler.Lease
	}{
		{"wrong worker", func(l scheduler.Lease) scheduler.Lease { l.Worker = "intruder"; return l }},
		{"stale attempt", func(l scheduler.Lease) scheduler.Lease { l.Attempt--; return l }},
		{"future attempt", func(l scheduler.Lease) scheduler.Lease { l.Attempt++; return l }},
	}
	outcomes := []scheduler.Status{scheduler.StatusCompleted, scheduler.StatusFailed, scheduler.StatusServiceUnavailable, scheduler.StatusPending}
	for _, lt := range leases {
		for _, st := range outcomes {
			t.Run(lt.name+"/finish "+string(st), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				ctx := context.Background()
				ev := newEvent("e", b.now, b.now)
				ev.Body = []byte("body")
				b.create(t, ev)
				// Two claims so that a stale attempt (1) exists: the first
				// lease expires and the event is claimed again.
				b.claim(t, testWorker, 1, b.now)
				if n, err := b.store.Reap(ctx, 0, 10, 5, b.at(visibility+time.Millisecond)); n != 1 || err != nil {
					t.Fatalf("Reap = %d, %v", n, err)
				}
				c := b.claim(t, testWorker, 1, b.at(visibility+time.Millisecond))
				held := scheduler.Lease{App: testApp, ID: "e", Worker: testWorker, Attempt: c.Events[0].Attempts}
				bad := lt.lease(held)
				leaseBefore, _ := zscore(t, b.mr, b.leaseKey("e"), "app/e")

				att := scheduler.Attempt{Attempt: bad.Attempt, At: b.now.UnixMilli(), StatusCode: 200, Worker: bad.Worker}
				ok, err := b.store.Finish(ctx, bad, scheduler.Outcome{Status: st, Backoff: time.Second, Attempt: att}, b.at(time.Minute))
				if err != nil || ok {
					t.Fatalf("Finish with %s = %v, %v; want false", lt.name, ok, err)
				}
				got := b.get(t, "e")
				if got.Status != scheduler.StatusProcessing || got.Attempts != 2 || got.Worker != testWorker || string(got.Body) != "body" {
					t.Fatalf("event changed: %+v", got)
				}
				// The history has the reaped attempt and the late one, marked stale.
				if len(got.History) != 2 {
					t.Fatalf("history = %+v, want the lease-expiry line and the stale attempt", got.History)
				}
				last := got.History[1]
				if last.Attempt != bad.Attempt || last.StatusCode != 200 || last.Worker != bad.Worker || !last.Stale {
					t.Fatalf("stale attempt in history = %+v, want it marked stale", last)
				}
				// The archive hears of the late attempt too, marked stale.
				out := streamEntries(t, b.mr, b.outKey("e"))
				if e := out[len(out)-1]; e["k"] != "attempt" || !strings.Contains(e["h"], `"stale":true`) {
					t.Fatalf("last outbox entry = %v, want the stale attempt", e)
				}
				// It reports the event's current status and update time, and no due time.
				checkEntry(t, out[len(out)-1], map[string]string{"m": "app/e", "k": "attempt", "c": msStr(b.now),
					"t": msStr(b.at(visibility + time.Millisecond)), "s": "PROCESSING"}, "h")
				if score, ok := zscore(t, b.mr, b.leaseKey("e"), "app/e"); !ok || score != leaseBefore {
					t.Fatalf("lease = %v, %v; want untouched %v", score, ok, leaseBefore)
				}
				if b.mr.TTL(b.evKey("e")) != 0 {
					t.Fatalf("stale finish set a TTL")
				}
				// The real holder still finishes.
				if ok, err := b.store.Finish(ctx, held, scheduler.Outcome{Status: scheduler.StatusCompleted,
					Attempt: scheduler.Attempt{Attempt: held.Attempt, StatusCode: 200}}, b.at(time.Minute)); !ok || err != nil {
					t.Fatalf("Finish by the holder = %v, %v", ok, err)
				}
			})
		}
		t.Run(lt.name+"/extend", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			held := b.createAndClaim(t, newEvent("e", b.now, b.now))
			ok, err := b.store.Extend(context.Background(), lt.lease(held), visibility, b.at(10*time.Second))
			if err != nil || ok {
				t.Fatalf("Extend = %v, %v; want false", ok, err)
			}
			if score, _ := zscore(t, b.mr, b.leaseKey("e"), "app/e"); int64(score) != b.at(visibility).UnixMilli() {
				t.Fatalf("lease moved to %v", score)
			}
			if got := b.get(t, "e"); got.Status != scheduler.StatusProcessing || len(got.History) != 0 {
				t.Fatalf("event = %+v", got)
			}
		})
	}

	t.Run("finish after the event is gone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := scheduler.Lease{App: testApp, ID: "ghost", Worker: testWorker, Attempt: 1}
		ok, err := b.store.Finish(context.Background(), l, scheduler.Outcome{Status: scheduler.StatusCompleted}, b.now)
		if err != nil || ok {
			t.Fatalf("Finish = %v, %v", ok, err)
		}
		if b.mr.Exists(b.evKey("ghost")) {
			t.Fatalf("finish recreated the hash")
		}
	})

	t.Run("finish after cancel and retry", func(t *testing.T) {
		t.Parallel()
		// Event claimed, lease expires, reaper returns it, an operator
		// cancels it: the first worker's late success must not resurrect it.
		b := setup(t)
		ctx := context.Background()
		l := b.createAndClaim(t, newEvent("e", b.now, b.now))
		if _, err := b.store.Reap(ctx, 0, 10, 5, b.at(visibility+time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Cancel(ctx, testApp, "e", b.at(visibility+2*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted,
			Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 200}}, b.at(time.Minute))
		if err != nil || ok {
			t.Fatalf("Finish = %v, %v", ok, err)
		}
		if got := b.get(t, "e"); got.Status != scheduler.StatusCancelled {
			t.Fatalf("status = %s", got.Status)
		}
	})
}

func TestExtend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	l := b.createAndClaim(t, newEvent("e", b.now, b.now))

	later := b.at(20 * time.Second)
	ok, err := b.store.Extend(ctx, l, time.Minute, later)
	if err != nil || !ok {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	if score, _ := zscore(t, b.mr, b.leaseKey("e"), "app/e"); int64(score) != later.Add(time.Minute).UnixMilli() {
		t.Fatalf("lease = %v, want %d", score, later.Add(time.Minute).UnixMilli())
	}
	// The old deadline has passed, the new one has not: nothing to reap.
	if n, err := b.store.Reap(ctx, 0, 10, 5, b.at(visibility+time.Second)); n != 0 || err != nil {
		t.Fatalf("Reap = %d, %v; want 0", n, err)
	}
	if got := b.get(t, "e"); got.Status != scheduler.StatusProcessing {
		t.Fatalf("status = %s", got.Status)
	}

	// Once finished, the lease is gone: extend reports false and adds nothing.
	if ok, _ := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1}}, later); !ok {
		t.Fatal("Finish lost the lease")
	}
	if ok, err := b.store.Extend(ctx, l, time.Minute, later); ok || err != nil {
		t.Fatalf("Extend after finish = %v, %v", ok, err)
	}
	if b.mr.Exists(b.leaseKey("e")) {
		t.Fatalf("extend after finish re-created the lease")
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := newEvent("p", b.at(time.Hour), b.now)
		ev.Body = []byte("b")
		b.create(t, ev)
		when := b.at(time.Second)
		if _, err := b.store.Cancel(ctx, testApp, "p", when); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		got := b.get(t, "p")
		if got.Status != scheduler.StatusCancelled || !got.FinishedAt.Equal(when) || !got.UpdatedAt.Equal(when) || string(got.Body) != "b" {
			t.Fatalf("event = %+v", got)
		}
		if _, ok := zscore(t, b.mr, b.dueKey("p"), "app/p"); ok {
			t.Fatal("cancelled event still due")
		}
		b.noExpiry(t, b.evKey("p"))
		out := streamEntries(t, b.mr, b.outKey("p"))
		if len(out) != 2 || out[0]["k"] != "create" || out[1]["k"] != "final" || finalOf(t, b, out[1], "b").Status != scheduler.StatusCancelled {
			t.Fatalf("outbox = %v", out)
		}
		// No attempt ended the run: h is empty.
		checkEntry(t, out[1], map[string]string{"m": "app/p", "k": "final", "c": msStr(b.now), "t": msStr(when),
			"s": "CANCELLED", "h": ""})
		// Nothing is claimed afterwards.
		if c := b.claim(t, testWorker, 10, b.at(2*time.Hour)); len(c.Events) != 0 {
			t.Fatalf("claimed a cancelled event")
		}
		// Cancelling twice is a conflict.
		var se *scheduler.StatusError
		if _, err := b.store.Cancel(ctx, testApp, "p", when); !errors.As(err, &se) || se.Status != scheduler.StatusCancelled {
			t.Fatalf("second Cancel = %v", err)
		}
	})

	t.Run("processing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createAndClaim(t, newEvent("p", b.now, b.now))
		_, err := b.store.Cancel(ctx, testApp, "p", b.now)
		var se *scheduler.StatusError
		if !errors.As(err, &se) || se.Status != scheduler.StatusProcessing || !errors.Is(err, scheduler.ErrConflict) {
			t.Fatalf("Cancel = %v, want *StatusError PROCESSING", err)
		}
		if want := "event in status PROCESSING. Cannot be deleted."; err.Error() != want {
			t.Fatalf("message = %q, want %q", err.Error(), want)
		}
		if got := b.get(t, "p"); got.Status != scheduler.StatusProcessing {
			t.Fatalf("status = %s", got.Status)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, err := b.store.Cancel(ctx, testApp, "nope", b.now); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Cancel = %v, want ErrNotFound", err)
		}
		if _, err := b.store.Get(ctx, testApp, "nope"); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
		if b.mr.Exists(b.evKey("nope")) {
			t.Fatal("cancel created a hash")
		}
	})
}

var retryable = []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable, scheduler.StatusCancelled}

func TestRequeue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("retry a failed event resets attempts and keeps history", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := newEvent("f", b.now, b.now)
		ev.Body = []byte("again")
		l := b.createAndClaim(t, ev)
		if ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusFailed,
			Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 400}}, b.now); !ok || err != nil {
			t.Fatalf("Finish = %v, %v", ok, err)
		}
		w := b.subscribe(t)
		when := b.at(time.Hour)
		if _, err := b.store.Requeue(ctx, testApp, "f", retryable, true, when); err != nil {
			t.Fatalf("Requeue: %v", err)
		}
		got := b.get(t, "f")
		if got.Status != scheduler.StatusPending || got.Attempts != 0 || !got.DueAt.Equal(when) ||
			!got.FinishedAt.IsZero() || string(got.Body) != "again" || len(got.History) != 1 {
			t.Fatalf("event = %+v", got)
		}
		if ttl := b.mr.TTL(b.evKey("f")); ttl != 0 {
			t.Fatalf("requeued event still expires in %v", ttl)
		}
		b.noExpiry(t, b.evKey("f"))
		out := streamEntries(t, b.mr, b.outKey("f"))
		if len(out) != 3 || out[0]["k"] != "create" || out[1]["k"] != "final" {
			t.Fatalf("outbox = %v, want create, final, requeue", out)
		}
		checkEntry(t, out[2], map[string]string{"m": "app/f", "k": "requeue", "c": msStr(b.now), "t": msStr(when),
			"s": "PENDING", "d": msStr(when), "a": "0"})
		if score, ok := zscore(t, b.mr, b.dueKey("f"), "app/f"); !ok || int64(score) != when.UnixMilli() {
			t.Fatalf("due = %v, %v", score, ok)
		}
		if got := w.drain(); !slices.Equal(got, []string{"0"}) {
			t.Fatalf("wake-ups = %q", got)
		}
		c := b.claim(t, testWorker, 10, when)
		if len(c.Events) != 1 || c.Events[0].Attempts != 1 {
			t.Fatalf("claim after retry: %+v", c.Events)
		}
	})

	t.Run("retry a cancelled event", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("c", b.at(time.Hour), b.now))
		if _, err := b.store.Cancel(ctx, testApp, "c", b.now); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Requeue(ctx, testApp, "c", retryable, true, b.at(time.Second)); err != nil {
			t.Fatalf("Requeue: %v", err)
		}
		if got := b.get(t, "c"); got.Status != scheduler.StatusPending || !got.DueAt.Equal(b.at(time.Second)) {
			t.Fatalf("event = %+v", got)
		}
	})

	t.Run("refused from completed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.createAndClaim(t, newEvent("done", b.now, b.now))
		if ok, _ := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1}}, b.now); !ok {
			t.Fatal("Finish lost the lease")
		}
		_, err := b.store.Requeue(ctx, testApp, "done", retryable, true, b.now)
		var se *scheduler.StatusError
		if !errors.As(err, &se) || se.Status != scheduler.StatusCompleted || !errors.Is(err, scheduler.ErrConflict) {
			t.Fatalf("Requeue = %v, want *StatusError COMPLETED", err)
		}
		if !strings.Contains(err.Error(), "COMPLETED") {
			t.Fatalf("message = %q", err)
		}
		if got := b.get(t, "done"); got.Status != scheduler.StatusCompleted {
			t.Fatalf("event changed: %+v", got)
		}
		// Still no expiry: that is the archiver's to set.
		b.noExpiry(t, b.evKey("done"))
		if out := streamEntries(t, b.mr, b.outKey("done")); len(out) != 2 || out[1]["k"] != "final" {
			t.Fatalf("a refused requeue wrote to the outbox: %v", out)
		}
	})

	t.Run("refused from pending and processing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("p", b.at(time.Hour), b.now))
		b.createAndClaim(t, newEvent("q", b.now, b.now))
		for id, st := range map[string]scheduler.Status{"p": scheduler.StatusPending, "q": scheduler.StatusProcessing} {
			var se *scheduler.StatusError
			if _, err := b.store.Requeue(ctx, testApp, id, retryable, true, b.now); !errors.As(err, &se) || se.Status != st {
				t.Fatalf("Requeue %s = %v, want *StatusError %s", id, err, st)
			}
		}
	})

	t.Run("run now keeps attempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.createAndClaim(t, newEvent("r", b.now, b.now))
		if ok, _ := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Hour,
			Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 500}}, b.now); !ok {
			t.Fatal("Finish lost the lease")
		}
		when := b.at(time.Second)
		if _, err := b.store.Requeue(ctx, testApp, "r", []scheduler.Status{scheduler.StatusPending}, false, when); err != nil {
			t.Fatalf("Requeue: %v", err)
		}
		got := b.get(t, "r")
		if got.Status != scheduler.StatusPending || got.Attempts != 1 || !got.DueAt.Equal(when) {
			t.Fatalf("event = %+v", got)
		}
		if members, _ := b.mr.ZMembers(b.dueKey("r")); len(members) != 1 {
			t.Fatalf("due = %q", members)
		}
		out := streamEntries(t, b.mr, b.outKey("r"))
		if len(out) != 3 || out[1]["k"] != "attempt" {
			t.Fatalf("outbox = %v, want create, attempt, requeue", out)
		}
		checkEntry(t, out[2], map[string]string{"m": "app/r", "k": "requeue", "c": msStr(b.now), "t": msStr(when),
			"s": "PENDING", "d": msStr(when), "a": "1"})
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, err := b.store.Requeue(ctx, testApp, "nope", retryable, true, b.now); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Requeue = %v, want ErrNotFound", err)
		}
	})
}

func TestReap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.create(t, newEvent("again", b.now, b.now))
	last := newEvent("last", b.now, b.now)
	last.MaxAttempts = 1
	last.Body = []byte("kept")
	b.create(t, last)
	b.create(t, newEvent("extended", b.now, b.now))
	if c := b.claim(t, testWorker, 10, b.now); len(c.Events) != 3 {
		t.Fatalf("claimed %d", len(c.Events))
	}
	if ok, _ := b.store.Extend(ctx, scheduler.Lease{App: testApp, ID: "extended", Worker: testWorker, Attempt: 1}, time.Hour, b.now); !ok {
		t.Fatal("Extend lost the lease")
	}

	// A millisecond before the deadline nothing expires.
	if n, err := b.store.Reap(ctx, 0, 10, 5, b.at(visibility-time.Millisecond)); n != 0 || err != nil {
		t.Fatalf("early Reap = %d, %v", n, err)
	}

	w := b.subscribe(t)
	when := b.at(visibility + time.Second)
	n, err := b.store.Reap(ctx, 0, 10, 5, when)
	if err != nil || n != 2 {
		t.Fatalf("Reap = %d, %v; want 2", n, err)
	}

	got := b.get(t, "again")
	if got.Status != scheduler.StatusPending || got.Attempts != 1 || !got.DueAt.Equal(when) || got.Worker != "" ||
		got.LastError != "lease expired" {
		t.Fatalf("again = %+v", got)
	}
	if len(got.History) != 1 || got.History[0].Error != "lease expired" || got.History[0].Attempt != 1 ||
		got.History[0].At != when.UnixMilli() || got.History[0].Worker != testWorker {
		t.Fatalf("again history = %+v", got.History)
	}
	if score, ok := zscore(t, b.mr, b.dueKey("again"), "app/again"); !ok || int64(score) != when.UnixMilli() {
		t.Fatalf("again due = %v, %v", score, ok)
	}

	got = b.get(t, "last")
	if got.Status != scheduler.StatusServiceUnavailable || string(got.Body) != "kept" || !got.FinishedAt.Equal(when) ||
		len(got.History) != 1 || got.History[0].Error != "lease expired" {
		t.Fatalf("last = %+v", got)
	}
	b.noExpiry(t, b.evKey("last"))
	if _, ok := zscore(t, b.mr, b.dueKey("last"), "app/last"); ok {
		t.Fatal("exhausted event back in due")
	}

	if got := b.get(t, "extended"); got.Status != scheduler.StatusProcessing {
		t.Fatalf("extended = %s", got.Status)
	}
	if members, _ := b.mr.ZMembers(b.leaseKey("again")); !slices.Equal(members, []string{"app/extended"}) {
		t.Fatalf("lease = %q", members)
	}
	out := streamEntries(t, b.mr, b.outKey("again"))
	var kinds []string
	for _, e := range out {
		kinds = append(kinds, e["m"]+" "+e["k"])
	}
	if want := []string{"app/again create", "app/last create", "app/extended create", "app/again attempt",
		"app/last final"}; !slices.Equal(kinds, want) {
		t.Fatalf("outbox = %q, want %q", kinds, want)
	}
	checkEntry(t, out[3], map[string]string{"m": "app/again", "k": "attempt", "c": msStr(b.now), "t": msStr(when),
		"s": "PENDING", "d": msStr(when)}, "h")
	checkEntry(t, out[4], map[string]string{"m": "app/last", "k": "final", "c": msStr(b.now), "t": msStr(when),
		"s": "SERVICE_UNAVAILABLE", "a": "1", "lc": "", "le": "lease expired"}, "h")
	for _, e := range out[3:] {
		var h scheduler.Attempt
		want := scheduler.Attempt{Attempt: 1, At: when.UnixMilli(), Error: "lease expired", Worker: testWorker}
		if err := json.Unmarshal([]byte(e["h"]), &h); err != nil || h != want {
			t.Fatalf("%s history line = %q (%v), want %+v", e["m"], e["h"], err, want)
		}
	}
	if got := finalOf(t, b, out[4], "kept"); got.Status != scheduler.StatusServiceUnavailable ||
		!got.FinishedAt.Equal(when) || got.LastError != "lease expired" || got.Attempts != 1 {
		t.Fatalf("last final event = %+v", got)
	}
	if got := w.drain(); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("wake-ups = %q", got)
	}

	// The recovered event is claimed again with attempt 2; the dead
	// worker's late finish is refused.
	c := b.claim(t, "w2", 10, when)
	if len(c.Events) != 1 || c.Events[0].ID != "again" || c.Events[0].Attempts != 2 {
		t.Fatalf("reclaim = %+v", c.Events)
	}
	if ok, _ := b.store.Finish(ctx, scheduler.Lease{App: testApp, ID: "again", Worker: testWorker, Attempt: 1},
		scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1}}, when); ok {
		t.Fatal("dead worker's finish accepted")
	}
}

func TestReapDefaultMaxAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.create(t, newEvent("e", b.now, b.now))
	now := b.now
	for attempt := 1; attempt <= 3; attempt++ {
		c := b.claim(t, testWorker, 10, now)
		if len(c.Events) != 1 || c.Events[0].Attempts != attempt {
			t.Fatalf("claim %d: %+v", attempt, c.Events)
		}
		now = now.Add(visibility)
		if n, err := b.store.Reap(ctx, 0, 10, 3, now); n != 1 || err != nil {
			t.Fatalf("Reap = %d, %v", n, err)
		}
	}
	got := b.get(t, "e")
	if got.Status != scheduler.StatusServiceUnavailable || got.Attempts != 3 || len(got.History) != 3 {
		t.Fatalf("after 3 expired leases with default max 3: %+v", got)
	}
}

func TestScriptFlush(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	flush := func() {
		t.Helper()
		if err := b.rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		// The next call's EVALSHA really meets NOSCRIPT.
		if ok, err := b.rdb.ScriptExists(ctx, luascripts.Claim.Hash()).Result(); err != nil || ok[0] {
			t.Fatalf("SCRIPT EXISTS after flush = %v, %v", ok, err)
		}
	}
	ev := newEvent("e", b.now, b.now)
	flush()
	b.create(t, ev)
	flush()
	b.create(t, newEvent("c", b.at(time.Hour), b.now))
	flush()
	if existing, err := b.store.Create(ctx, newEvent("e", b.now, b.now), b.now); err != nil || existing == nil {
		t.Fatalf("duplicate Create = %v, %v", existing, err)
	}
	flush()
	c := b.claim(t, testWorker, 1, b.now)
	if len(c.Events) != 1 {
		t.Fatalf("claim after flush: %d events", len(c.Events))
	}
	l := scheduler.Lease{App: testApp, ID: "e", Worker: testWorker, Attempt: 1}
	flush()
	if ok, err := b.store.Extend(ctx, l, visibility, b.now); !ok || err != nil {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	flush()
	if ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Second,
		Attempt: scheduler.Attempt{Attempt: 1}}, b.now); !ok || err != nil {
		t.Fatalf("Finish retry = %v, %v", ok, err)
	}
	flush()
	c = b.claim(t, testWorker, 1, b.at(time.Second))
	l.Attempt = 2
	flush()
	if ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusFailed,
		Attempt: scheduler.Attempt{Attempt: 2}}, b.at(time.Second)); !ok || err != nil {
		t.Fatalf("Finish ack = %v, %v", ok, err)
	}
	flush()
	if _, err := b.store.Requeue(ctx, testApp, "e", retryable, true, b.at(2*time.Second)); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	flush()
	if _, err := b.store.Cancel(ctx, testApp, "c", b.now); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	b.claim(t, testWorker, 1, b.at(2*time.Second))
	flush()
	if n, err := b.store.Reap(ctx, 0, 10, 5, b.at(time.Hour)); n != 1 || err != nil {
		t.Fatalf("Reap = %d, %v", n, err)
	}
	if got := b.get(t, "e"); got.Status != scheduler.StatusPending || got.Attempts != 1 {
		t.Fatalf("event = %+v", got)
	}
}
