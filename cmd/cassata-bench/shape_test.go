package main

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

func TestPayloadRealistic(t *testing.T) {
	t.Parallel()
	const base = "http://127.0.0.1:9/sink"
	queries, bodies := map[string]bool{}, map[string]bool{}
	for i := range 1000 {
		key := "burst/burst-" + strconv.Itoa(i)
		p := payloadFor(shapeRealistic, base, key)
		u, err := url.Parse(p.URL)
		if err != nil {
			t.Fatalf("%s: URL %q: %v", key, p.URL, err)
		}
		if got := u.Scheme + "://" + u.Host + u.Path; got != base {
			t.Fatalf("%s: URL %q does not go to the sink", key, p.URL)
		}
		if n := len(u.RawQuery); n < 36 || n > 44 {
			t.Errorf("%s: query %q is %d bytes, want about 40", key, u.RawQuery, n)
		}
		q := u.Query()
		if q.Get("customer") == "" || q.Get("order") == "" || q.Get("lang") == "" {
			t.Errorf("%s: query %q lacks a field", key, u.RawQuery)
		}
		if len(p.Body) != realisticBodyLen {
			t.Errorf("%s: body %q is %d bytes, want %d", key, p.Body, len(p.Body), realisticBodyLen)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(p.Body), &obj); err != nil {
			t.Errorf("%s: body %q is not JSON: %v", key, p.Body, err)
		} else if obj["customer"] != q.Get("customer") || obj["order"] != q.Get("order") {
			t.Errorf("%s: body %q and query %q name different orders", key, p.Body, u.RawQuery)
		}
		if len(p.Headers) != 1 || p.Headers["Content-Type"] != "application/json" {
			t.Errorf("%s: headers %v, want only Content-Type: application/json", key, p.Headers)
		}
		queries[u.RawQuery], bodies[p.Body] = true, true
	}
	// A hash of six digits collides now and then; nearly all must differ.
	if len(queries) < 990 || len(bodies) < 990 {
		t.Errorf("1000 events have %d different queries and %d different bodies; want them to vary per event",
			len(queries), len(bodies))
	}
	if again := payloadFor(shapeRealistic, base, "burst/burst-7"); again.Body != payloadFor(shapeRealistic, base, "burst/burst-7").Body {
		t.Error("the same event must get the same payload (a retried create must be an identical replay)")
	}
}

func TestPayloadSmall(t *testing.T) {
	t.Parallel()
	p := payloadFor(shapeSmall, "http://127.0.0.1:9/sink", "burst/burst-1")
	if p.URL != "http://127.0.0.1:9/sink" || p.Body != strings.Repeat("0123456789", 10) ||
		len(p.Headers) != 1 || p.Headers["X-Bench"] != "1" {
		t.Errorf("small payload = %+v, want the bare sink URL, 100 digits and X-Bench", p)
	}
}

func TestNewEventShapes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	small := newEvent(shapeSmall, "steady", "steady-1", "http://h/sink", at)
	real := newEvent(shapeRealistic, "steady", "steady-1", "http://h/sink", at)
	if small.URL != "http://h/sink" || !strings.HasPrefix(real.URL, "http://h/sink?customer=") {
		t.Errorf("URLs: small %q, realistic %q", small.URL, real.URL)
	}
	for _, ev := range []event{small, real} {
		if ev.App != "steady" || ev.ID != "steady-1" || ev.Method != "POST" || ev.At != "2026-11-23T10:00:00.000Z" {
			t.Errorf("event = %+v", ev)
		}
	}
	if !strings.Contains(shapeLegend(shapeRealistic), strconv.Itoa(len(sampleQuery()))+"-byte query") {
		t.Errorf("legend %q should give the query size", shapeLegend(shapeRealistic))
	}
}

// TestUUIDIDs: --ids uuid gives a UUID-shaped id (version 4, RFC 4122
// variant) that the server accepts, the same for the same short id, and
// distinct ones for the bench's many short ids.
func TestUUIDIDs(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := range 200_000 {
		short := "burst-" + strconv.Itoa(i)
		u := uuidOf(short)
		if !re.MatchString(u) {
			t.Fatalf("uuidOf(%q) = %q: not UUID-shaped", short, u)
		}
		if seen[u] {
			t.Fatalf("uuidOf(%q) = %q: given twice", short, u)
		}
		seen[u] = true
		if !scheduler.ValidID(u) {
			t.Fatalf("uuidOf(%q) = %q: not a valid event id", short, u)
		}
	}
	if uuidOf("burst-1") != uuidOf("burst-1") {
		t.Error("uuidOf is not deterministic")
	}
	b := &bench{opts: options{ids: idsSeq}}
	if got := b.eventID("burst-1"); got != "burst-1" {
		t.Errorf("--ids seq: eventID = %q, want the short id", got)
	}
}
