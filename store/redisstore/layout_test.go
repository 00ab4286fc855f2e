package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// What a pending event's hash leaves out to stay small: the status (a hash
// without one is PENDING) and JSON around its headers.

// headersCase is headers and how they are stored ("" when as JSON).
type headersCase struct {
	name    string
	headers map[string]string
	stored  string
}

func TestHeadersForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []headersCase{
		{"one", map[string]string{"X-Bench": "1"}, "X-Bench:1"},
		{"sorted, values with colons, tabs, spaces, empty", map[string]string{"b": "x: y\tz ", "A": "", "c": "é\xff"},
			"A:\nb:x: y\tz \nc:é\xff"},
		{"a name with a colon falls back to JSON", map[string]string{"a:b": "1"}, ""},
		{"a value with a line break falls back to JSON", map[string]string{"A": "1\n2"}, ""},
		{"a name starting with { falls back to JSON", map[string]string{"{x": "1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkHeadersForm(t, tc.headers, false, tc.stored)
		})
	}
	// Hashes written before the compact form hold JSON.
	if got, err := decodeHeaders(`{"X-A":"1","Content-Type":"text/plain"}`); err != nil ||
		!maps.Equal(got, map[string]string{"X-A": "1", "Content-Type": "text/plain"}) {
		t.Fatalf("decodeHeaders(JSON) = %v, %v", got, err)
	}
	for _, bad := range []string{"no colon", "A:1\n:2", "{not json"} {
		if _, err := decodeHeaders(bad); err == nil {
			t.Errorf("decodeHeaders(%q) succeeded", bad)
		}
	}
}

// checkHeadersForm checks that headers are stored as stored ("": as
// JSON) and read back as they were.
func checkHeadersForm(t *testing.T, headers map[string]string, tabled bool, stored string) {
	t.Helper()
	enc := string(encodeHeaders(headers, tabled))
	if stored != "" && enc != stored {
		t.Fatalf("encodeHeaders = %q, want %q", enc, stored)
	}
	if stored == "" && enc[0] != '{' {
		t.Fatalf("encodeHeaders = %q, want JSON", enc)
	}
	got, err := decodeHeaders(enc)
	if err != nil || !maps.Equal(got, headers) {
		t.Fatalf("decodeHeaders(%q) = %q, %v; want %q", enc, got, err, headers)
	}
}

// TestHeadersTabled: in layoutTabled a header line of headerTable is
// stored as its one-byte code, the codes before the other lines, and
// every form reads back as the headers it was made from.
func TestHeadersTabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []headersCase{
		{"the realistic event's", map[string]string{"Content-Type": "application/json"}, "\x80"},
		{"a code and a line", map[string]string{"Content-Type": "application/json", "X-Sig": "v1,abc"}, "\x80X-Sig:v1,abc"},
		{"codes in name order, lines after", map[string]string{"X-A": "1", "Content-Type": "text/xml", "Accept": "*/*", "B": "2"},
			"\x8a\x87B:2\nX-A:1"},
		{"a known name with another value is a line", map[string]string{"Content-Type": "application/pdf"},
			"Content-Type:application/pdf"},
		{"names match as written", map[string]string{"content-type": "application/json", "CONTENT-TYPE": "text/plain"},
			"\x8cCONTENT-TYPE:text/plain"},
		{"no header of the table: lines as before", map[string]string{"X-Bench": "1"}, "X-Bench:1"},
		{"a value with a line break falls back to JSON", map[string]string{"Content-Type": "application/json", "A": "1\n2"}, ""},
		{"a name starting with a byte of 0x80 or more falls back to JSON", map[string]string{"éx": "1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkHeadersForm(t, tc.headers, true, tc.stored)
			// Without the table (layouts 1 to 3): no code, ever.
			if plain := encodeHeaders(tc.headers, false); len(plain) > 0 && plain[0] >= headerCode0 {
				t.Fatalf("encodeHeaders(untabled) = %q: starts with a code", plain)
			}
		})
	}
	// Every line of the table, alone and all together.
	all := map[string]string{}
	for i, l := range headerTable {
		one := map[string]string{l.name: l.value}
		if enc := encodeHeaders(one, true); string(enc) != string([]byte{byte(headerCode0 + i)}) {
			t.Errorf("line %d %q: stored as %q", i, l, enc)
		}
		if l.name == "Content-Type" && l.value != "application/json" {
			continue // one value per name in all
		}
		all[l.name] = l.value
	}
	enc := encodeHeaders(all, true)
	if got, err := decodeHeaders(string(enc)); err != nil || !maps.Equal(got, all) {
		t.Fatalf("decodeHeaders(%q) = %q, %v; want %q", enc, got, err, all)
	}
	// A code past the table is a newer release's: an error, not a guess.
	for _, bad := range []string{string([]byte{headerCode0 + byte(len(headerTable))}), "\x80\xffX:1", "\x80:1", "\x80X"} {
		if hs, err := decodeHeaders(bad); err == nil {
			t.Errorf("decodeHeaders(%q) = %q, want an error", bad, hs)
		}
	}
}

// TestHeaderTablePinned: headerTable is part of what Redis holds (each
// line's code is its place in the table), so its lines never change or
// move: a new line goes at the end, and this list gets it too.
func TestHeaderTablePinned(t *testing.T) {
	t.Parallel()
	pinned := []headerLine{
		{"Content-Type", "application/json"},
		{"Content-Type", "application/json; charset=utf-8"},
		{"Content-Type", "application/json;charset=UTF-8"},
		{"Content-Type", "application/x-www-form-urlencoded"},
		{"Content-Type", "text/plain"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Type", "application/xml"},
		{"Content-Type", "text/xml"},
		{"Content-Type", "application/octet-stream"},
		{"Accept", "application/json"},
		{"Accept", "*/*"},
		{"Content-Encoding", "gzip"},
		{"content-type", "application/json"},
		{"accept", "application/json"},
	}
	if len(headerTable) < len(pinned) || !slices.Equal(headerTable[:len(pinned)], pinned) {
		t.Fatalf("headerTable changed its lines:\n%q\nwant it to start with\n%q", headerTable, pinned)
	}
	if len(headerTable) > 256-headerCode0 {
		t.Fatalf("%d lines: more than one-byte codes from %#x can number", len(headerTable), headerCode0)
	}
	seen := map[headerLine]bool{}
	for _, l := range headerTable {
		if seen[l] {
			t.Errorf("line %q twice", l)
		}
		seen[l] = true
	}
}

// TestTabledHeadersByLayout: a namespace of layoutTabled stores a table's
// header as its code, one of an earlier layout as its line (processes of
// the release before read no codes, and run on such namespaces), and
// both read back the same event.
func TestTabledHeadersByLayout(t *testing.T) {
	t.Parallel()
	for _, layout := range []int{layoutPacked, layoutTabled} {
		t.Run(fmt.Sprint("layout ", layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{Namespace: testNS, Shards: 1, Retention: testRetention, WakeHorizon: testHorizon,
				EventLayout: layout})
			ev := newEvent("h", b.at(time.Hour), b.now)
			ev.Headers = map[string]string{"Content-Type": "application/json", "X-Trace": "t-1"}
			b.create(t, ev)
			want := "Content-Type:application/json\nX-Trace:t-1"
			if layout == layoutTabled {
				want = "\x80X-Trace:t-1"
			}
			if got := b.stored(t, "h")[name(fHeaders)]; got != want {
				t.Errorf("headers stored as %q, want %q", got, want)
			}
			if got := b.get(t, "h"); !maps.Equal(got.Headers, ev.Headers) {
				t.Errorf("headers read back %q, want %q", got.Headers, ev.Headers)
			}
		})
	}
}

func TestPendingWithoutStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("get, get many, cancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("p", b.at(time.Hour), b.now))
		if s, ok := b.stored(t, "p")["s"]; ok {
			t.Fatalf("a new event stores its status (%q)", s)
		}
		if got := b.get(t, "p"); got.Status != scheduler.StatusPending {
			t.Fatalf("Get status = %q", got.Status)
		}
		many, err := b.store.GetMany(ctx, []scheduler.Ident{{App: testApp, ID: "p"}, {App: testApp, ID: "none"}})
		if err != nil || many[0] == nil || many[0].Status != scheduler.StatusPending || many[1] != nil {
			t.Fatalf("GetMany = %v, %v", many, err)
		}
		if _, err := b.store.Cancel(ctx, testApp, "p", b.now); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if got := b.get(t, "p"); got.Status != scheduler.StatusCancelled {
			t.Fatalf("after Cancel status = %q", got.Status)
		}
		if _, err := b.store.Cancel(ctx, testApp, "none", b.now); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Cancel of a missing event = %v", err)
		}
	})

	t.Run("run now", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("r", b.at(time.Hour), b.now))
		if _, err := b.store.Requeue(ctx, testApp, "r", []scheduler.Status{scheduler.StatusPending}, false, b.now); err != nil {
			t.Fatalf("Requeue: %v", err)
		}
		if score, ok := zscore(t, b.mr, b.dueKey("r"), "app/r"); !ok || int64(score) != b.now.UnixMilli() {
			t.Fatalf("due score = %v, %v; want now", score, ok)
		}
		_, err := b.store.Requeue(ctx, testApp, "none", []scheduler.Status{scheduler.StatusPending}, false, b.now)
		if !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Requeue of a missing event = %v", err)
		}
		b.create(t, newEvent("r2", b.at(time.Hour), b.now))
		_, err = b.store.Requeue(ctx, testApp, "r2", []scheduler.Status{scheduler.StatusFailed}, true, b.now)
		var se *scheduler.StatusError
		if !errors.As(err, &se) || se.Status != scheduler.StatusPending {
			t.Fatalf("Requeue of a PENDING event where only FAILED is allowed = %v, want a StatusError PENDING", err)
		}
	})

	t.Run("a finish without the lease is recorded as stale", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, newEvent("s", b.at(time.Hour), b.now))
		held, err := b.store.Finish(ctx, scheduler.Lease{App: testApp, ID: "s", Worker: testWorker, Attempt: 1},
			scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{Attempt: 1, At: b.now.UnixMilli(), StatusCode: 200}}, b.now)
		if err != nil || held {
			t.Fatalf("Finish = %v, %v; want refused", held, err)
		}
		got := b.get(t, "s")
		if got.Status != scheduler.StatusPending || len(got.History) != 1 || !got.History[0].Stale {
			t.Fatalf("after a finish without the lease: %+v", got)
		}
		out := streamEntries(t, b.mr, b.outKey("s"))
		if len(out) != 2 || out[1]["k"] != "attempt" || out[1]["s"] != "PENDING" {
			t.Fatalf("outbox = %v; want the create and a PENDING attempt entry", out)
		}
	})
}
