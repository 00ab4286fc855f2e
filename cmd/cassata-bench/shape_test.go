package main

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
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
