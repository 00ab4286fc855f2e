package redisstore

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
)

// snake turns a Go field name into the key prelude.lua's F uses for it:
// DueAt → due_at, URL → url.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// TestPreludeMirrorsCodec reads prelude.lua's F (field names) and FIELDS
// (their order, the positional form scripts return events in) and compares
// them with codec.go's eventFields, so a field added, renamed or moved on
// one side only fails here rather than as a garbled event.
func TestPreludeMirrorsCodec(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "..", "luascripts", "prelude.lua"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(name string) string {
		m := regexp.MustCompile(`(?ms)^local ` + name + ` = \{\n(.*?)^\}`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("prelude.lua: no `local %s = {` ... `}` block", name)
		}
		return string(m[1])
	}
	luaF := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+) = '([^']*)'`).FindAllStringSubmatch(block("F"), -1) {
		luaF[m[1]] = m[2]
	}
	var luaOrder []string
	for _, m := range regexp.MustCompile(`F\.(\w+)`).FindAllStringSubmatch(block("FIELDS"), -1) {
		luaOrder = append(luaOrder, m[1])
	}

	if len(luaF) != numFields {
		t.Errorf("prelude.lua F has %d fields, codec.go %d", len(luaF), numFields)
	}
	if len(luaOrder) != numFields {
		t.Errorf("prelude.lua FIELDS lists %d fields, codec.go %d", len(luaOrder), numFields)
	}
	for i, f := range eventFields {
		key := snake(f.goName)
		if got, ok := luaF[key]; !ok {
			t.Errorf("prelude.lua F lacks %s (codec.go: %s = %q)", key, f.goName, f.name)
		} else if got != f.name {
			t.Errorf("prelude.lua F.%s = %q, codec.go %s = %q", key, got, f.goName, f.name)
		}
		if i < len(luaOrder) && luaOrder[i] != key {
			t.Errorf("prelude.lua FIELDS[%d] = F.%s, codec.go has %s there", i+1, luaOrder[i], key)
		}
	}

	// The long fields (LONG_AT), and the state section of a compact value
	// (STATE, after the due time, which codec.go writes first).
	refs := func(name string) []string {
		m := regexp.MustCompile(`(?s)\nlocal ` + name + ` = \{(.*?)\}\n`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("prelude.lua: no `local %s = {...}`", name)
		}
		var out []string
		for _, r := range regexp.MustCompile(`I\.(\w+)`).FindAllStringSubmatch(string(m[1]), -1) {
			out = append(out, r[1])
		}
		return out
	}
	var long, state []string
	for _, f := range eventFields {
		if f.long {
			long = append(long, snake(f.goName))
		}
	}
	for _, f := range stateFields[1:] {
		state = append(state, snake(eventFields[f].goName))
	}
	if got := refs("LONG_AT"); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(long))) {
		t.Errorf("prelude.lua LONG_AT = %q, codec.go's long fields %q", got, long)
	}
	if stateFields[0] != fDue {
		t.Errorf("codec.go stateFields starts with %d, not the due time (prelude.lua reads it first)", stateFields[0])
	}
	if got := refs("STATE"); !slices.Equal(got, state) {
		t.Errorf("prelude.lua STATE = %q, codec.go's state fields after the due time %q", got, state)
	}
}

// TestCodecTableDocumented checks that the table in codec.go's doc comment
// lists exactly the fields of eventFields, with their Redis names, and that
// every field of scheduler.Event is stored (App and ID are the key;
// BodyDropped is derived from an absent body).
func TestCodecTableDocumented(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "codec.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, d := range file.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Doc != nil && strings.Contains(g.Doc.Text(), "| Go name") {
			doc = g.Doc.Text()
		}
	}
	if doc == "" {
		t.Fatal("codec.go: no doc comment with a `| Go name | field |` table")
	}
	row := regexp.MustCompile(`(?m)^\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|`)
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = m[2]
	}
	want := map[string]string{}
	for _, f := range eventFields {
		want[f.goName] = f.name
	}
	for goName, name := range want {
		if got, ok := documented[goName]; !ok {
			t.Errorf("codec.go table lacks %s (field %q)", goName, name)
		} else if got != name {
			t.Errorf("codec.go table says %s is %q, eventFields %q", goName, got, name)
		}
	}
	for goName := range documented {
		if _, ok := want[goName]; !ok {
			t.Errorf("codec.go table lists %s, which eventFields lacks", goName)
		}
	}
	notStored := map[string]bool{"App": true, "ID": true, "BodyDropped": true}
	et := reflect.TypeFor[scheduler.Event]()
	for i := range et.NumField() {
		n := et.Field(i).Name
		if _, ok := want[n]; !ok && !notStored[n] {
			t.Errorf("scheduler.Event.%s is not in the codec", n)
		}
	}
}

// codecEvents are events of every shape the codec handles: defaults left
// out, long values chunked and stored whole, headers in JSON form, history.
func codecEvents(now time.Time) []*scheduler.Event {
	long := strings.Repeat("0123456789", 30)
	return []*scheduler.Event{
		{App: testApp, ID: "plain", URL: "https://example.com/a", Method: "POST", DueAt: now, CreatedAt: now},
		{App: testApp, ID: "full", URL: "https://example.com/" + long, Method: "PUT",
			Headers: map[string]string{"Content-Type": "application/json", "X-Long": long},
			Body:    []byte(long), DueAt: now.Add(-time.Second), CreatedAt: now.Add(-time.Minute),
			MaxAttempts: 7, Timeout: 3 * time.Second, MinBackoff: time.Second, MaxBackoff: time.Minute,
			FlowKey: "tenant:42", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			History: []scheduler.Attempt{{Attempt: 1, At: now.Add(-time.Hour).UnixMilli(), StatusCode: 503,
				DurationMS: 12, Worker: "old", Response: long}}},
		{App: testApp, ID: "huge", URL: "https://example.com/h", Method: "PATCH",
			Headers: map[string]string{"X-Odd": "two\nlines"},
			Body:    []byte(strings.Repeat("b", chunkSize*maxChunks+1)), DueAt: now, CreatedAt: now},
	}
}

// createAll creates evs, all new, in shard 0's store st.
func createAll(t *testing.T, st *Store, evs []*scheduler.Event, now time.Time) {
	t.Helper()
	for _, ev := range evs {
		if ex, err := st.Create(context.Background(), ev, now); err != nil || ex != nil {
			t.Fatalf("create %s: %v, %v", ev.ID, ex, err)
		}
	}
}

// finishClaimed records outcome o for every event of claim c.
func finishClaimed(t *testing.T, st *Store, c scheduler.Claim, o scheduler.Outcome, now time.Time) {
	t.Helper()
	for _, ev := range c.Events {
		l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts}
		if held, err := st.Finish(context.Background(), l, o, now); err != nil || !held {
			t.Fatalf("finish %s: %v, %v", ev.ID, held, err)
		}
	}
}

// finalRecords reads shard 0's outbox as consumer and returns its final records.
func finalRecords(t *testing.T, st *Store, consumer string) []scheduler.Record {
	t.Helper()
	recs, err := st.ReadOutbox(context.Background(), 0, consumer, false, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var finals []scheduler.Record
	for _, r := range recs {
		if r.Kind == scheduler.RecordFinal {
			finals = append(finals, r)
		}
	}
	return finals
}

// TestClaimDecodesAsGet: a claimed event, decoded from the claim reply,
// equals the same event read with Get right after, but for the fields a
// delivery does not read (decodeClaimed), for every shape of
// event, on a first claim and on a claim after a failed attempt (last
// status, last error and history set).
func TestClaimDecodesAsGet(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, now, evs := createCodecEvents(t, be)
			check := func(c scheduler.Claim, round string) {
				t.Helper()
				if len(c.Events) != len(evs) {
					t.Fatalf("%s: claimed %d events, want %d", round, len(c.Events), len(evs))
				}
				for _, got := range c.Events {
					want, err := st.Get(ctx, got.App, got.ID)
					if err != nil {
						t.Fatal(err)
					}
					// A claim returns what a delivery needs (decodeClaimed):
					// not the history, last outcome or finish time.
					want.History, want.LastStatusCode, want.LastError, want.FinishedAt = nil, 0, "", time.Time{}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s %s: claim decoded\n%+v\nGet reads\n%+v", round, got.ID, got, want)
					}
				}
			}
			c, err := st.Claim(ctx, 0, testWorker, 10, visibility, now)
			if err != nil {
				t.Fatal(err)
			}
			check(c, "first claim")
			finishClaimed(t, st, c, scheduler.Outcome{Status: scheduler.StatusPending,
				Attempt: scheduler.Attempt{At: now.UnixMilli(), StatusCode: 500, Error: "HTTP 500", DurationMS: 3}}, now)
			c, err = st.Claim(ctx, 0, testWorker, 10, visibility, now.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			check(c, "second claim")
		})
	}
}

// TestChangesReturnTheEvent: cancel, requeue (retry and run now) and a
// refused create return the event as Get then reads it, and nothing when
// they change nothing.
func TestChangesReturnTheEvent(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openChunkStore(t, be, be.open(t))
			now := time.UnixMilli(1_700_000_000_000).UTC()
			for i, ev := range codecEvents(now.Add(time.Hour)) {
				at := now.Add(time.Duration(i) * time.Second)
				same := func(op string, got *scheduler.Event, err error, status scheduler.Status) {
					t.Helper()
					if err != nil {
						t.Fatalf("%s %s: %v", op, ev.ID, err)
					}
					want, err := st.Get(ctx, ev.App, ev.ID)
					if err != nil {
						t.Fatal(err)
					}
					if got == nil || !reflect.DeepEqual(got, want) {
						t.Fatalf("%s %s returned\n%+v\nGet reads\n%+v", op, ev.ID, got, want)
					}
					if got.Status != status {
						t.Fatalf("%s %s: status %s, want %s", op, ev.ID, got.Status, status)
					}
				}
				if ex, err := st.Create(ctx, ev, at); err != nil || ex != nil {
					t.Fatalf("create %s: %v, %v", ev.ID, ex, err)
				}
				dup := *ev
				dup.URL += "/other"
				ex, err := st.Create(ctx, &dup, at)
				same("create again", ex, err, scheduler.StatusPending)

				got, err := st.Requeue(ctx, ev.App, ev.ID, []scheduler.Status{scheduler.StatusPending}, false, at)
				same("run now", got, err, scheduler.StatusPending)
				got, err = st.Cancel(ctx, ev.App, ev.ID, at.Add(time.Millisecond))
				same("cancel", got, err, scheduler.StatusCancelled)
				if !got.FinishedAt.Equal(at.Add(time.Millisecond)) {
					t.Fatalf("cancel %s: finished %v", ev.ID, got.FinishedAt)
				}
				got, err = st.Cancel(ctx, ev.App, ev.ID, at)
				if got != nil || err == nil {
					t.Fatalf("cancel %s again: %v, %v; want no event and a status error", ev.ID, got, err)
				}
				got, err = st.Requeue(ctx, ev.App, ev.ID, []scheduler.Status{scheduler.StatusCancelled}, true, at.Add(2*time.Millisecond))
				same("retry", got, err, scheduler.StatusPending)
				if got.Attempts != 0 || !got.FinishedAt.IsZero() || !got.DueAt.Equal(at.Add(2*time.Millisecond)) {
					t.Fatalf("retry %s: %+v", ev.ID, got)
				}
			}
			if got, err := st.Cancel(ctx, testApp, "missing", now); got != nil || err != scheduler.ErrNotFound {
				t.Fatalf("cancel missing: %v, %v", got, err)
			}
			if got, err := st.Requeue(ctx, testApp, "missing", []scheduler.Status{scheduler.StatusPending}, false, now); got != nil || err != scheduler.ErrNotFound {
				t.Fatalf("requeue missing: %v, %v", got, err)
			}
		})
	}
}

// TestOneRoundTripPerChange: creating, cancelling, retrying and running now
// through the Scheduler (as the API does) each send Redis exactly one
// command, their script, and answer with the event as Get reads it.
func TestOneRoundTripPerChange(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := be.open(t)
			st := openChunkStore(t, be, rdb)
			cc := &commandCounter{}
			rdb.(*redis.Client).AddHook(cc)
			sched := scheduler.New(st, scheduler.Config{})
			for _, ev := range codecEvents(time.Now().Add(time.Hour)) {
				ev.CreatedAt, ev.History = time.Time{}, nil
				if ev.ID == "huge" {
					ev.Headers = map[string]string{"X-Odd": "one line"} // the API refuses line breaks
				}
				ops := []struct {
					name string
					do   func() (*scheduler.Event, error)
				}{
					{"create", func() (*scheduler.Event, error) {
						got, created, err := sched.Create(ctx, ev, scheduler.CreateOptions{})
						if err == nil && !created {
							t.Fatalf("create %s: not created", ev.ID)
						}
						return got, err
					}},
					{"run now", func() (*scheduler.Event, error) { return sched.RunNow(ctx, ev.App, ev.ID) }},
					{"cancel", func() (*scheduler.Event, error) { return sched.Cancel(ctx, ev.App, ev.ID) }},
					{"retry", func() (*scheduler.Event, error) { return sched.Retry(ctx, ev.App, ev.ID) }},
				}
				for _, op := range ops {
					n0 := cc.n.Load()
					got, err := op.do()
					if err != nil {
						t.Fatalf("%s %s: %v", op.name, ev.ID, err)
					}
					if sent := cc.since(n0); len(sent) != 1 || sent[0] != "evalsha" {
						t.Errorf("%s %s sent %v, want one evalsha", op.name, ev.ID, sent)
					}
					want, err := st.Get(ctx, ev.App, ev.ID)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s %s returned\n%+v\nGet reads\n%+v", op.name, ev.ID, got, want)
					}
				}
			}
		})
	}
}

// TestTraceParentAbsentWhenUntraced: an untraced event's hash has no trace
// field at all (bytes per pending event is a design target); a traced one
// has it, and reads it back.
func TestTraceParentAbsentWhenUntraced(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000).UTC()
	ev := &scheduler.Event{App: testApp, ID: "x", URL: "https://example.com/", Method: "POST", DueAt: now, CreatedAt: now}
	for i, f := range encode(ev) {
		if i%2 == 0 && f == name(fTraceParent) {
			t.Fatalf("untraced event encodes %q", f)
		}
	}
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	fields := encode(ev)
	m := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fmt.Sprint(fields[i+1])
	}
	got, err := decodeHash(ev.App, ev.ID, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.TraceParent != ev.TraceParent {
		t.Errorf("TraceParent read back %q, want %q", got.TraceParent, ev.TraceParent)
	}
}

// TestUnpackStrings: what prelude.lua's xadd_final packs reads back string
// for string (empty, binary, a ':' inside), and a damaged string is an
// error, never a panic or a wrong event.
func TestUnpackStrings(t *testing.T) {
	t.Parallel()
	got, err := unpackStrings("1:u0:3:a:b5:\x00-\n:x")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"u", "", "a:b", "\x00-\n:x"}; !slices.Equal(got, want) {
		t.Errorf("unpackStrings = %q, want %q", got, want)
	}
	for _, bad := range []string{"-", "3:ab", "x:abc", "-1:a", "2", "99999999999999999999:a"} {
		if v, err := unpackStrings(bad); err == nil {
			t.Errorf("unpackStrings(%q) = %q, want an error", bad, v)
		}
	}
	if _, err := decodeFinal("a", "b", "1:u"); err == nil {
		t.Error("decodeFinal of an odd number of strings: no error")
	}
}

// TestFinalEntryCarriesTheEvent: the record the archiver reads for the
// 'final' outbox entry of a finished event (the entry with the event read
// from its hash, withEvents) has, on a real redis-server and on miniredis,
// the event as Get reads it (but for the history, which the archive has
// from the attempts' own entries), long values and a binary body included.
func TestFinalEntryCarriesTheEvent(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, now, evs := createCodecEvents(t, be)
			c, err := st.Claim(ctx, 0, testWorker, len(evs), visibility, now)
			if err != nil || len(c.Events) != len(evs) {
				t.Fatalf("claim: %d events, %v", len(c.Events), err)
			}
			finishClaimed(t, st, c, scheduler.Outcome{Status: scheduler.StatusFailed,
				Attempt: scheduler.Attempt{At: now.UnixMilli(), StatusCode: 400, Error: strings.Repeat("e", 150), DurationMS: 3}}, now)
			finals := finalRecords(t, st, "t")
			for _, r := range finals {
				want, err := st.Get(ctx, r.App, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				want.History = nil
				if !reflect.DeepEqual(r.Event, want) {
					t.Errorf("final entry of %s decodes to\n%+v\nGet reads\n%+v", r.ID, r.Event, want)
				}
				if r.Attempt == nil || r.Attempt.StatusCode != 400 {
					t.Errorf("final entry of %s: attempt %+v", r.ID, r.Attempt)
				}
			}
			if len(finals) != len(evs) {
				t.Errorf("%d final entries, want %d", len(finals), len(evs))
			}
		})
	}
}

// createCodecEvents opens a store on be and creates codecEvents, due at the
// fixed time it returns.
func createCodecEvents(t *testing.T, be chunkBackend) (*Store, time.Time, []*scheduler.Event) {
	t.Helper()
	st := openChunkStore(t, be, be.open(t))
	now := time.UnixMilli(1_700_000_000_000).UTC()
	evs := codecEvents(now)
	createAll(t, st, evs, now)
	return st, now, evs
}

// TestPairValuesAsHashValues: reading a hash from its field, value pairs
// gives what reading it from a map does, for hashes with long values in
// one chunk, in many, with a chunk missing in the middle, chunks without
// their first, and fields no event has, whatever the order of the pairs.
func TestPairValuesAsHashValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		m := map[string]string{}
		for _, hf := range eventFields {
			if rng.IntN(3) == 0 {
				continue
			}
			if !hf.long {
				m[hf.name] = fmt.Sprintf("%s-%d", hf.name, rng.IntN(1000))
				continue
			}
			chunks := rng.IntN(maxChunks + 1)
			for c := range chunks {
				if rng.IntN(8) == 0 {
					continue // a gap: readers stop at it
				}
				m[chunkField(hf.name, c)] = strings.Repeat(string(rune('a'+c)), 1+rng.IntN(chunkSize))
			}
		}
		if rng.IntN(4) == 0 {
			m["zz"] = "not a field"
		}
		var pairs []any
		for f, val := range m { // map order: random
			pairs = append(pairs, f, val)
		}
		got, err := pairValues(pairs, -1)
		if err != nil {
			t.Fatal(err)
		}
		if want := hashValues(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("hash %d %v:\npairValues %q\nhashValues %q", n, m, got, want)
		}
		skipped, _ := pairValues(pairs, fHistory)
		if skipped[fHistory] != nil {
			t.Fatalf("the skipped field was read: %q", skipped[fHistory])
		}
	}
	if _, err := pairValues([]any{"u"}, -1); err == nil {
		t.Error("an odd number of values was taken")
	}
	if _, err := pairValues([]any{"u", int64(3)}, -1); err == nil {
		t.Error("a value that is not a string was taken")
	}
}
