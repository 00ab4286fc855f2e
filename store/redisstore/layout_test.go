package redisstore

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// What a pending event's hash leaves out to stay small: the status (a hash
// without one is PENDING) and JSON around its headers.

func TestHeadersForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		headers map[string]string
		stored  string // "" when JSON is expected
	}{
		{"one", map[string]string{"X-Bench": "1"}, "X-Bench:1"},
		{"sorted, values with colons, tabs, spaces, empty", map[string]string{"b": "x: y\tz ", "A": "", "c": "é\xff"},
			"A:\nb:x: y\tz \nc:é\xff"},
		{"a name with a colon falls back to JSON", map[string]string{"a:b": "1"}, ""},
		{"a value with a line break falls back to JSON", map[string]string{"A": "1\n2"}, ""},
		{"a name starting with { falls back to JSON", map[string]string{"{x": "1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enc := string(encodeHeaders(tc.headers))
			if tc.stored != "" && enc != tc.stored {
				t.Fatalf("encodeHeaders = %q, want %q", enc, tc.stored)
			}
			if tc.stored == "" && enc[0] != '{' {
				t.Fatalf("encodeHeaders = %q, want JSON", enc)
			}
			got, err := decodeHeaders(enc)
			if err != nil || !maps.Equal(got, tc.headers) {
				t.Fatalf("decodeHeaders(%q) = %q, %v; want %q", enc, got, err, tc.headers)
			}
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
