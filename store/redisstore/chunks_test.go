package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
)

// Long values (url, headers, body, history, last error) are chunked so that
// the hash of an ordinary event stays listpack-encoded on a default Redis
// (chunks.go). These tests run every path that writes or reads them, on
// miniredis (cassata dev) and on a real redis-server.

func TestChunkConstantsMatchPrelude(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "..", "luascripts", "prelude.lua"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^local CHUNK, MAX_CHUNKS = (\d+), (\d+)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("prelude.lua: no `local CHUNK, MAX_CHUNKS = ...` line")
	}
	if string(m[1]) != strconv.Itoa(chunkSize) || string(m[2]) != strconv.Itoa(maxChunks) {
		t.Fatalf("prelude.lua CHUNK, MAX_CHUNKS = %s, %s; chunks.go has %d, %d", m[1], m[2], chunkSize, maxChunks)
	}
	// Which fields are long: TestPreludeMirrorsCodec (LONG_AT).
}

func TestAppendJoinLong(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 63, 64, 65, 128, 129, chunkSize * maxChunks, chunkSize*maxChunks + 1, 1 << 20} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			v := make([]byte, n)
			for i := range v {
				v[i] = byte(i * 7)
			}
			args := appendLong(nil, "b", v)
			m := map[string]string{}
			for i := 0; i < len(args); i += 2 {
				val := args[i+1].([]byte)
				m[args[i].(string)] = string(val)
				if len(args) > 2 && len(val) > chunkSize {
					t.Fatalf("chunk %s of %d bytes", args[i], len(val))
				}
			}
			want := 1
			if n > chunkSize && n <= chunkSize*maxChunks {
				want = (n + chunkSize - 1) / chunkSize
			}
			if len(m) != want {
				t.Fatalf("%d fields, want %d", len(m), want)
			}
			got, ok := joinLong(m, "b")
			if !ok || got != string(v) {
				t.Fatalf("joinLong: %d bytes, %v; want the %d bytes back", len(got), ok, n)
			}
			joinChunks(m)
			if len(m) != 1 || m["b"] != string(v) {
				t.Fatalf("joinChunks left %d fields", len(m))
			}
		})
	}
}

// allBytes is a body with every byte value, twice (512 bytes: 8 chunks).
func allBytes() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// chunkBackend is a store on miniredis or on a real redis-server, whose
// namespace stores events in one layout (codec.go): the long values these
// tests write are chunked in a hash, and whole in a compact value.
type chunkBackend struct {
	name   string
	open   func(t *testing.T) redis.UniversalClient
	isMR   bool
	layout int
}

func chunkBackends() []chunkBackend {
	var out []chunkBackend
	for _, layout := range []int{layoutHash, layoutCompact} {
		suffix := map[int]string{layoutHash: "/hash", layoutCompact: "/compact"}[layout]
		out = append(out,
			chunkBackend{name: "miniredis" + suffix, isMR: true, layout: layout, open: func(t *testing.T) redis.UniversalClient {
				mr := miniredis.RunT(t)
				rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
				t.Cleanup(func() { _ = rdb.Close() })
				return rdb
			}},
			chunkBackend{name: "redis-server" + suffix, layout: layout, open: func(t *testing.T) redis.UniversalClient {
				return redistest.Start(t).Client()
			}})
	}
	return out
}

// storedNames lists the names event key is stored under, in either layout:
// a hash's fields (chunks and all), or the fields present in a compact
// value.
func storedNames(t *testing.T, rdb redis.UniversalClient, key string) []string {
	t.Helper()
	ctx := context.Background()
	if typ, err := rdb.Type(ctx, key).Result(); err != nil || typ != "string" {
		names, err := rdb.HKeys(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	v, err := rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := compactValues(v)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, x := range vals {
		if x != nil {
			names = append(names, name(i))
		}
	}
	return names
}

// checkEncoding fails when event key is not stored as its layout keeps an
// ordinary event: a listpack hash, or a string.
func checkEncoding(t *testing.T, be chunkBackend, rdb redis.UniversalClient, key, where string) {
	t.Helper()
	if be.isMR {
		return // miniredis has no encodings
	}
	enc, err := rdb.ObjectEncoding(context.Background(), key).Result()
	want := map[int][]string{layoutHash: {"listpack"}, layoutCompact: {"embstr", "raw"}}[be.layout]
	if err != nil || !slices.Contains(want, enc) {
		t.Errorf("%s: OBJECT ENCODING = %q, %v; want one of %q", where, enc, err, want)
	}
}

func openChunkStore(t *testing.T, be chunkBackend, rdb redis.UniversalClient) *Store {
	t.Helper()
	st, err := New(context.Background(), rdb, Config{Namespace: testNS, Shards: 1, Retention: testRetention,
		WakeHorizon: testHorizon, EventLayout: be.layout})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkSame fails when got does not carry want's url, headers and body.
func checkSame(t *testing.T, where string, want, got *scheduler.Event) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no event", where)
	}
	if got.URL != want.URL {
		t.Fatalf("%s: url %q, want %q", where, got.URL, want.URL)
	}
	if !maps.Equal(got.Headers, want.Headers) && (len(got.Headers) > 0 || len(want.Headers) > 0) {
		t.Fatalf("%s: headers %v, want %v", where, got.Headers, want.Headers)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("%s: body of %d bytes differs from the %d sent", where, len(got.Body), len(want.Body))
	}
}

func TestChunkedRoundTrip(t *testing.T) {
	t.Parallel()
	longURL := "https://example.com/hooks/" + strings.Repeat("segment/", 20) + "?token=" + strings.Repeat("x", 40)
	bigHeaders := map[string]string{"Authorization": "Bearer " + strings.Repeat("t", 120), "X-A": "1", "X-B": strings.Repeat("v", 70)}
	longErr := "Post \"" + longURL + "\": dial tcp 192.0.2.1:443: connect: connection refused"
	cases := []struct {
		name    string
		url     string
		headers map[string]string
		body    []byte
	}{
		{"empty body", "http://127.0.0.1:40123/sink", nil, nil},
		{"every byte value", "http://127.0.0.1:40123/sink", map[string]string{"X-Bench": "1"}, allBytes()},
		{"64 bytes", "http://127.0.0.1:40123/sink", nil, bytes.Repeat([]byte{0xff}, 64)},
		{"65 bytes", "http://127.0.0.1:40123/sink", nil, append(bytes.Repeat([]byte("a"), 64), 0)},
		{"128 bytes", "http://127.0.0.1:40123/sink", nil, bytes.Repeat([]byte("\x00\n"), 64)},
		{"bench event", "http://127.0.0.1:40123/sink", map[string]string{"X-Bench": "1"}, []byte(strings.Repeat("0123456789", 10))},
		{"long url and headers", longURL, bigHeaders, []byte(`{"ok":true}`)},
		{"1 MiB body", longURL, bigHeaders, bytes.Repeat(allBytes(), 2048)},
	}
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			rdb := be.open(t)
			st := openChunkStore(t, be, rdb)
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000).UTC()
			dir := t.TempDir()
			arch, err := archive.Open(ctx, "sqlite://"+filepath.Join(dir, "archive.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = arch.Close() })
			if err := arch.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for i, c := range cases {
				id := fmt.Sprintf("e%d", i)
				at := now.Add(time.Duration(i) * time.Minute)
				ev := &scheduler.Event{App: testApp, ID: id, URL: c.url, Method: "POST", Headers: c.headers, Body: c.body,
					DueAt: at, Status: scheduler.StatusPending, CreatedAt: at, UpdatedAt: at}
				if existing, err := st.Create(ctx, ev, at); err != nil || existing != nil {
					t.Fatalf("%s: Create = %v, %v", c.name, existing, err)
				}
				key := st.k.ev(0, ev.Member())
				if len(c.body) < 1024 && len(c.url) < 1024 {
					checkEncoding(t, be, rdb, key, c.name)
				}
				got, err := st.Get(ctx, testApp, id)
				if err != nil {
					t.Fatal(err)
				}
				checkSame(t, c.name+": Get", ev, got)
				// Creating it again returns the stored event for comparison.
				existing, err := st.Create(ctx, ev, at)
				if err != nil {
					t.Fatal(err)
				}
				checkSame(t, c.name+": duplicate Create", ev, existing)
				many, err := st.GetMany(ctx, []scheduler.Ident{{App: testApp, ID: id}})
				if err != nil || len(many) != 1 || many[0] == nil {
					t.Fatalf("%s: GetMany = %v, %v", c.name, many, err)
				}
				// GetMany reads what Get reads: the same event, whole.
				checkSame(t, c.name+": GetMany", ev, many[0])

				// First attempt fails and is retried: history and last error
				// grow past a chunk.
				claim, err := st.Claim(ctx, 0, testWorker, 10, visibility, at)
				if err != nil || len(claim.Events) != 1 {
					t.Fatalf("%s: Claim = %+v, %v", c.name, claim, err)
				}
				checkSame(t, c.name+": Claim", ev, claim.Events[0])
				lease := scheduler.Lease{App: testApp, ID: id, Worker: testWorker, Attempt: claim.Events[0].Attempts}
				held, err := st.Finish(ctx, lease, scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Second,
					Attempt: scheduler.Attempt{Attempt: 1, At: at.UnixMilli(), Error: longErr, Worker: testWorker}}, at)
				if err != nil || !held {
					t.Fatalf("%s: retry = %v, %v", c.name, held, err)
				}
				got, err = st.Get(ctx, testApp, id)
				if err != nil {
					t.Fatal(err)
				}
				checkSame(t, c.name+": Get after retry", ev, got)
				if got.LastError != longErr || len(got.History) != 1 || got.History[0].Error != longErr {
					t.Fatalf("%s: after retry last error %q, history %+v", c.name, got.LastError, got.History)
				}
				if len(c.body) < 1024 && len(c.url) < 1024 {
					checkEncoding(t, be, rdb, key, c.name+" after a retry")
				}

				// Second attempt fails for good, with a short error: the
				// long one's chunks must go.
				claim, err = st.Claim(ctx, 0, testWorker, 10, visibility, at.Add(time.Second))
				if err != nil || len(claim.Events) != 1 {
					t.Fatalf("%s: second Claim = %+v, %v", c.name, claim, err)
				}
				checkSame(t, c.name+": second Claim", ev, claim.Events[0])
				lease.Attempt = claim.Events[0].Attempts
				held, err = st.Finish(ctx, lease, scheduler.Outcome{Status: scheduler.StatusFailed,
					Attempt: scheduler.Attempt{Attempt: 2, At: at.Add(time.Second).UnixMilli(), StatusCode: 400, Error: "HTTP 400"}}, at.Add(time.Second))
				if err != nil || !held {
					t.Fatalf("%s: fail = %v, %v", c.name, held, err)
				}
				fields := storedNames(t, rdb, key)
				if !slices.Contains(fields, "le") {
					t.Fatalf("%s: no last error in %q", c.name, fields)
				}
				for _, f := range fields {
					if strings.HasPrefix(f, "le") && f != "le" {
						t.Fatalf("%s: stale chunk %s of the last error in %q", c.name, f, fields)
					}
				}
				got, err = st.Get(ctx, testApp, id)
				if err != nil {
					t.Fatal(err)
				}
				checkSame(t, c.name+": Get after failure", ev, got)
				if got.Status != scheduler.StatusFailed || got.LastError != "HTTP 400" || len(got.History) != 2 ||
					got.History[0].Error != longErr || got.History[1].StatusCode != 400 {
					t.Fatalf("%s: after failure %+v", c.name, got)
				}
			}

			// The outbox: create entries carry the whole url, final entries
			// the whole event; through the archive and back.
			recs, err := st.ReadOutbox(ctx, 0, "c1", false, 1000)
			if err != nil {
				t.Fatal(err)
			}
			finals := map[string]*scheduler.Event{}
			for _, r := range recs {
				if r.Kind == "" {
					t.Fatalf("outbox entry %s not understood", r.StreamID)
				}
				var i int
				fmt.Sscanf(r.ID, "e%d", &i)
				c := cases[i]
				switch r.Kind {
				case scheduler.RecordCreate:
					if r.Event.URL != c.url {
						t.Fatalf("%s: create entry url %q", c.name, r.Event.URL)
					}
				case scheduler.RecordFinal:
					want := &scheduler.Event{URL: c.url, Headers: c.headers, Body: c.body}
					checkSame(t, c.name+": final outbox entry", want, r.Event)
					if r.Event.LastError != "HTTP 400" || r.Event.BodyDropped {
						t.Fatalf("%s: final entry %+v", c.name, r.Event)
					}
					finals[r.ID] = r.Event
				}
			}
			if len(finals) != len(cases) {
				t.Fatalf("%d final entries, want %d", len(finals), len(cases))
			}
			if err := arch.Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			for i, c := range cases {
				got, err := arch.Get(ctx, testApp, fmt.Sprintf("e%d", i))
				if err != nil {
					t.Fatal(err)
				}
				want := &scheduler.Event{URL: c.url, Headers: c.headers, Body: c.body}
				if want.Body == nil {
					want.Body = got.Body // the archive stores an empty body as known-empty
					if len(got.Body) != 0 {
						t.Fatalf("%s: archived body %q, want empty", c.name, got.Body)
					}
				}
				checkSame(t, c.name+": archive", want, got)
				if len(got.History) != 2 || got.History[0].Error != longErr {
					t.Fatalf("%s: archived history %+v", c.name, got.History)
				}
			}
		})
	}
}

// A completed event drops its body, every chunk of it, once its outcome is
// archived (the archive then has the body for reads).
func TestChunkedBodyDropped(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			rdb := be.open(t)
			st := openChunkStore(t, be, rdb)
			ctx := context.Background()
			// Recent, so that the retention window started by archiving has not
			// ended (the hash would be gone).
			now := time.Now().UTC().Truncate(time.Millisecond)
			ev := newEvent("done", now, now)
			ev.Body = allBytes()
			if _, err := st.Create(ctx, ev, now); err != nil {
				t.Fatal(err)
			}
			claim, err := st.Claim(ctx, 0, testWorker, 1, visibility, now)
			if err != nil || len(claim.Events) != 1 {
				t.Fatalf("Claim = %+v, %v", claim, err)
			}
			checkSame(t, "claim", ev, claim.Events[0])
			lease := scheduler.Lease{App: testApp, ID: "done", Worker: testWorker, Attempt: 1}
			if held, err := st.Finish(ctx, lease, scheduler.Outcome{Status: scheduler.StatusCompleted,
				Attempt: scheduler.Attempt{Attempt: 1, At: now.UnixMilli(), StatusCode: 200}}, now); err != nil || !held {
				t.Fatalf("Finish = %v, %v", held, err)
			}
			// Until the outcome is archived, Redis keeps the body for reads.
			if got, err := st.Get(ctx, testApp, "done"); err != nil || got.BodyDropped || !bytes.Equal(got.Body, ev.Body) {
				t.Fatalf("Get before archiving = %+v, %v: the body must stay until the archive has it", got, err)
			}
			recs, err := st.ReadOutbox(ctx, 0, "c1", false, 10)
			if err != nil {
				t.Fatal(err)
			}
			final := recs[len(recs)-1]
			if final.Kind != scheduler.RecordFinal || !bytes.Equal(final.Event.Body, ev.Body) {
				t.Fatalf("final entry %+v: the body must travel whole to the archive", final)
			}
			if err := st.AckOutbox(ctx, 0, recs); err != nil {
				t.Fatal(err)
			}
			fields := storedNames(t, rdb, st.k.ev(0, ev.Member()))
			for _, f := range fields {
				if f == "b" || (len(f) > 1 && f[0] == 'b' && f[1] >= '0' && f[1] <= '9') {
					t.Fatalf("body field %s left after the outcome was archived: %q", f, fields)
				}
			}
			got, err := st.Get(ctx, testApp, "done")
			if err != nil || !got.BodyDropped || got.Body != nil {
				t.Fatalf("Get after archiving = %+v, %v", got, err)
			}
		})
	}
}

// A lease that expires appends to a chunked history and replaces a long
// last error by "lease expired", deleting its chunks.
func TestChunkedReap(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			rdb := be.open(t)
			st := openChunkStore(t, be, rdb)
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000).UTC()
			ev := newEvent("r", now, now)
			ev.Body = allBytes()
			longErr := strings.Repeat("refused ", 30)
			if _, err := st.Create(ctx, ev, now); err != nil {
				t.Fatal(err)
			}
			for attempt := 1; attempt <= 2; attempt++ {
				at := now.Add(time.Duration(attempt) * time.Minute)
				if c, err := st.Claim(ctx, 0, testWorker, 1, visibility, at); err != nil || len(c.Events) != 1 {
					t.Fatalf("Claim = %+v, %v", c, err)
				}
				if attempt == 2 {
					break
				}
				lease := scheduler.Lease{App: testApp, ID: "r", Worker: testWorker, Attempt: attempt}
				if held, err := st.Finish(ctx, lease, scheduler.Outcome{Status: scheduler.StatusPending,
					Attempt: scheduler.Attempt{Attempt: attempt, At: at.UnixMilli(), Error: longErr}}, at); err != nil || !held {
					t.Fatalf("Finish = %v, %v", held, err)
				}
			}
			if n, err := st.Reap(ctx, 0, 10, 5, now.Add(time.Hour)); err != nil || n != 1 {
				t.Fatalf("Reap = %d, %v", n, err)
			}
			got, err := st.Get(ctx, testApp, "r")
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, "after reap", ev, got)
			if got.LastError != "lease expired" || len(got.History) != 2 || got.History[0].Error != longErr ||
				got.History[1].Error != "lease expired" {
				t.Fatalf("after reap: last error %q, history %+v", got.LastError, got.History)
			}
			fields := storedNames(t, rdb, st.k.ev(0, ev.Member()))
			if !slices.Contains(fields, "le") {
				t.Fatalf("no last error in %q", fields)
			}
			for _, f := range fields {
				if strings.HasPrefix(f, "le") && f != "le" {
					t.Fatalf("stale chunk %s of the last error in %q", f, fields)
				}
			}
		})
	}
}

// Hashes written before chunking hold long values whole: they read, claim,
// finish and archive as before, and their values are rewritten chunked.
func TestUnchunkedHashesStillRead(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			rdb := be.open(t)
			st := openChunkStore(t, be, rdb)
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000).UTC()
			url := "https://example.com/" + strings.Repeat("p", 100)
			body := allBytes()
			headers := `{"X-Long":"` + strings.Repeat("h", 100) + `"}`
			line := `{"attempt":1,"at":1700000000000,"error":"` + strings.Repeat("e", 80) + `","duration_ms":3}` + "\n"
			m := "app/old"
			key := st.k.ev(0, m)
			if err := rdb.HSet(ctx, key, "u", url, "d", now.UnixMilli(), "s", "PENDING", "c", now.UnixMilli(),
				"h", headers, "b", body, "a", 1, "hi", line, "le", strings.Repeat("e", 80), "lc", "", "t", now.UnixMilli()).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ZAdd(ctx, st.k.due(0), redis.Z{Score: float64(now.UnixMilli()), Member: m}).Err(); err != nil {
				t.Fatal(err)
			}
			want := &scheduler.Event{URL: url, Headers: map[string]string{"X-Long": strings.Repeat("h", 100)}, Body: body}
			got, err := st.Get(ctx, testApp, "old")
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, "Get", want, got)
			if len(got.History) != 1 || got.LastError != strings.Repeat("e", 80) {
				t.Fatalf("Get = %+v", got)
			}
			many, err := st.GetMany(ctx, []scheduler.Ident{{App: testApp, ID: "old"}})
			if err != nil || many[0] == nil || many[0].URL != url || many[0].LastError != strings.Repeat("e", 80) {
				t.Fatalf("GetMany = %+v, %v", many, err)
			}
			c, err := st.Claim(ctx, 0, testWorker, 1, visibility, now)
			if err != nil || len(c.Events) != 1 {
				t.Fatalf("Claim = %+v, %v", c, err)
			}
			checkSame(t, "Claim", want, c.Events[0])
			lease := scheduler.Lease{App: testApp, ID: "old", Worker: testWorker, Attempt: 2}
			if held, err := st.Finish(ctx, lease, scheduler.Outcome{Status: scheduler.StatusFailed,
				Attempt: scheduler.Attempt{Attempt: 2, At: now.UnixMilli(), Error: strings.Repeat("f", 90)}}, now); err != nil || !held {
				t.Fatalf("Finish = %v, %v", held, err)
			}
			got, err = st.Get(ctx, testApp, "old")
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, "Get after finish", want, got)
			if len(got.History) != 2 || got.History[1].Error != strings.Repeat("f", 90) || got.LastError != strings.Repeat("f", 90) {
				t.Fatalf("Get after finish = %+v", got)
			}
			recs, err := st.ReadOutbox(ctx, 0, "c1", false, 10)
			if err != nil || len(recs) != 1 || recs[0].Kind != scheduler.RecordFinal {
				t.Fatalf("ReadOutbox = %+v, %v", recs, err)
			}
			checkSame(t, "final entry", want, recs[0].Event)
		})
	}
}

// TestPendingEventMemory logs what a typical pending event (the bench's
// realistic one: a url with a query string, one header, a 100-byte body)
// costs on a default-configured redis-server in each layout, asserts each
// is stored as its layout keeps an ordinary event (a listpack hash, a
// string), and that the compact layout takes less memory than the hash:
// what it is for. The figure is used_memory over many events divided by
// their count, as cmd/cassata-bench measures it (without the outbox, which
// the archiver empties).
func TestPendingEventMemory(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	usedMemory := func() int64 {
		info, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory in INFO memory")
		return 0
	}
	perEvent := map[int]float64{}
	for _, be := range chunkBackends() {
		if be.isMR {
			continue
		}
		// One namespace after the other in one server: the first one's
		// events stay, and the second is measured on top of them.
		st, err := New(ctx, rdb, Config{Namespace: fmt.Sprintf("bench%d", be.layout), EventLayout: be.layout})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().Truncate(time.Millisecond)
		const n, batch = 50_000, 500
		before := usedMemory()
		for i := 0; i < n; i += batch {
			evs := make([]*scheduler.Event, 0, batch)
			for j := i; j < i+batch; j++ {
				evs = append(evs, &scheduler.Event{App: "memory", ID: "m" + strconv.Itoa(j),
					URL: "http://127.0.0.1:40123/sink?customer=c-123456&order=o-12345678&lang=en", Method: "POST",
					Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(strings.Repeat("0123456789", 10)),
					DueAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now})
			}
			if _, err := st.CreateMany(ctx, evs, now); err != nil {
				t.Fatal(err)
			}
		}
		for sh := range st.Shards() {
			if err := rdb.Del(ctx, st.k.out(sh)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		after := usedMemory()
		m := "memory/m12345"
		key := st.k.ev(st.k.shard(m), m)
		checkEncoding(t, be, rdb, key, be.name)
		enc, _ := rdb.ObjectEncoding(ctx, key).Result()
		usage, err := rdb.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		perEvent[be.layout] = float64(after-before) / n
		t.Logf("%s: pending event %s: %s, MEMORY USAGE %d bytes, fields %q; used_memory per pending event (event + due member): %.0f bytes",
			be.name, key, enc, usage, storedNames(t, rdb, key), perEvent[be.layout])
	}
	if perEvent[layoutCompact] >= perEvent[layoutHash] {
		t.Errorf("a pending event takes %.0f bytes compact, %.0f as a hash: the compact layout must take less",
			perEvent[layoutCompact], perEvent[layoutHash])
	}
}

// TestArchivedEventsHoldNoSlack: once archived, a finished compact event
// takes what a value of its length written at once takes. A claim and an
// outcome APPEND to the value, and Redis grows an appended string to up to
// twice its length, which a finished event would otherwise keep through its
// retention (redis-server 7.0: 712 bytes against 520 for a failed one).
// Delivered, failed and cancelled events, against redis-server (miniredis
// has no MEMORY USAGE).
func TestArchivedEventsHoldNoSlack(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client()
	st := openChunkStore(t, chunkBackend{layout: layoutCompact}, rdb)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	ids := []string{"done", "fail", "gone"}
	var evs []*scheduler.Event
	for _, id := range ids {
		evs = append(evs, &scheduler.Event{App: testApp, ID: id,
			URL: "http://127.0.0.1:40123/sink?customer=c-123456&order=o-12345678&lang=en", Method: "POST",
			Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(strings.Repeat("0123456789", 10)),
			DueAt: now, CreatedAt: now, UpdatedAt: now})
	}
	evs[2].DueAt = now.Add(time.Hour)
	if _, err := st.CreateMany(ctx, evs, now); err != nil {
		t.Fatal(err)
	}
	c, err := st.Claim(ctx, 0, testWorker, 10, visibility, now)
	if err != nil || len(c.Events) != 2 {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	line := scheduler.Attempt{Attempt: 1, At: now.UnixMilli(), StatusCode: 500, Error: "HTTP 500", DurationMS: 3}
	for id, status := range map[string]scheduler.Status{"done": scheduler.StatusCompleted, "fail": scheduler.StatusFailed} {
		lease := scheduler.Lease{App: testApp, ID: id, Worker: testWorker, Attempt: 1}
		if held, err := st.Finish(ctx, lease, scheduler.Outcome{Status: status, Attempt: line}, now); err != nil || !held {
			t.Fatalf("Finish %s = %v, %v", id, held, err)
		}
	}
	if _, err := st.Cancel(ctx, testApp, "gone", now); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ReadOutbox(ctx, 0, "c1", false, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AckOutbox(ctx, 0, recs); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		key := st.k.ev(0, testApp+"/"+id)
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 {
			t.Fatalf("%s: PTTL = %v, %v; want its retention", id, ttl, err)
		}
		v, err := rdb.Get(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		// The same bytes written at once, under a key name of the same length.
		fresh := key[:len(key)-1] + "~"
		if err := rdb.Set(ctx, fresh, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		got, err1 := rdb.MemoryUsage(ctx, key).Result()
		want, err2 := rdb.MemoryUsage(ctx, fresh).Result()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got > want {
			t.Errorf("%s: archived, its %d-byte value takes %d bytes; written at once, %d", id, len(v), got, want)
		}
	}
}

// joinChunks replaces every chunked long value of m by the joined value and
// removes its chunk fields, so m reads like a hash of unchunked values.
func joinChunks(m map[string]string) {
	for _, f := range longFields {
		if _, ok := m[chunkField(f, 1)]; !ok {
			continue
		}
		v, _ := joinLong(m, f)
		for i := 1; ; i++ {
			c := chunkField(f, i)
			if _, ok := m[c]; !ok {
				break
			}
			delete(m, c)
		}
		if _, ok := m[f]; ok {
			m[f] = v
		}
	}
}
