package redisstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
)

// TestFlowKeyRoundTrip: an event's flow key is hash field fk when set and
// absent when not; Get, Claim, a refused create and a replace read it
// back; the outbox's create and final entries carry it to the archive, so
// a pending and a finished event both show it there.
func TestFlowKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := be.open(t)
			st := openChunkStore(t, be, rdb)
			now := time.UnixMilli(1_700_000_000_000).UTC()
			arch, err := archive.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "archive.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = arch.Close() })
			if err := arch.Migrate(ctx); err != nil {
				t.Fatal(err)
			}

			keys := map[string]string{"with": "tenant:42", "without": ""}
			for id, key := range keys {
				ev := &scheduler.Event{App: testApp, ID: id, URL: "https://example.com/" + id, Method: "POST",
					Body: []byte("x"), DueAt: now, CreatedAt: now, UpdatedAt: now, FlowKey: key}
				if ex, err := st.Create(ctx, ev, now); err != nil || ex != nil {
					t.Fatalf("create %s: %v, %v", id, ex, err)
				}
				_, has := storedValues(t, rdb, st.k.ev(0, ev.Member()))["fk"]
				if has != (key != "") {
					t.Errorf("%s: field fk present = %v, want %v", id, has, key != "")
				}
				got, err := st.Get(ctx, testApp, id)
				if err != nil || got.FlowKey != key {
					t.Fatalf("%s: Get flow key %q (%v), want %q", id, got.FlowKey, err, key)
				}
				// A refused create returns the stored event, key and all.
				ex, err := st.Create(ctx, ev, now)
				if err != nil || ex == nil || ex.FlowKey != key {
					t.Fatalf("%s: second create returned %+v, %v; want the event with flow key %q", id, ex, err, key)
				}
			}

			// The archive sees the pending events' keys from the create entries.
			recs, err := st.ReadOutbox(ctx, 0, "c1", false, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("outbox has %d entries, want the 2 creates", len(recs))
			}
			for _, r := range recs {
				if r.Kind != scheduler.RecordCreate || r.Event.FlowKey != keys[r.ID] {
					t.Fatalf("%s: %s entry with flow key %q, want a create with %q", r.ID, r.Kind, r.Event.FlowKey, keys[r.ID])
				}
			}
			if err := arch.Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			for id, key := range keys {
				if got, err := arch.Get(ctx, testApp, id); err != nil || got.FlowKey != key {
					t.Fatalf("%s: archived pending event has flow key %q (%v), want %q", id, got.FlowKey, err, key)
				}
			}

			// Claimed and finished: the claim reply and the final entry carry it.
			c, err := st.Claim(ctx, 0, testWorker, 10, visibility, now)
			if err != nil || len(c.Events) != 2 {
				t.Fatalf("claim = %+v, %v", c, err)
			}
			for _, ev := range c.Events {
				if ev.FlowKey != keys[ev.ID] {
					t.Errorf("%s: claimed with flow key %q, want %q", ev.ID, ev.FlowKey, keys[ev.ID])
				}
				l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: testWorker, Attempt: ev.Attempts}
				o := scheduler.Outcome{Status: scheduler.StatusCompleted,
					Attempt: scheduler.Attempt{Attempt: 1, At: now.UnixMilli(), StatusCode: 200, DurationMS: 3, Worker: testWorker}}
				if held, err := st.Finish(ctx, l, o, now.Add(time.Second)); err != nil || !held {
					t.Fatalf("finish %s: %v, %v", ev.ID, held, err)
				}
			}
			recs, err = st.ReadOutbox(ctx, 0, "c1", false, 100)
			if err != nil {
				t.Fatal(err)
			}
			finals := 0
			for _, r := range recs {
				if r.Kind != scheduler.RecordFinal {
					continue
				}
				finals++
				if r.Event.FlowKey != keys[r.ID] {
					t.Errorf("%s: final entry with flow key %q, want %q", r.ID, r.Event.FlowKey, keys[r.ID])
				}
			}
			if finals != 2 {
				t.Fatalf("%d final entries in %+v, want 2", finals, recs)
			}
			if err := arch.Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			for id, key := range keys {
				got, err := arch.Get(ctx, testApp, id)
				if err != nil || got.FlowKey != key || got.Status != scheduler.StatusCompleted {
					t.Fatalf("%s: archived finished event %+v (%v), want COMPLETED with flow key %q", id, got, err, key)
				}
			}

			// A replaced occurrence takes the new template's key, or none.
			occ := &scheduler.Event{App: testApp, ID: "s@1700000060000", URL: "https://example.com/occ", Method: "POST",
				DueAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now, Kind: scheduler.KindOccurrence, FlowKey: "old"}
			if ex, err := st.Create(ctx, occ, now); err != nil || ex != nil {
				t.Fatalf("create occurrence: %v, %v", ex, err)
			}
			for _, key := range []string{"new", ""} {
				repl := *occ
				repl.FlowKey = key
				if ex, err := st.ReplacePending(ctx, &repl, now); err != nil || ex != nil {
					t.Fatalf("replace: %v, %v", ex, err)
				}
				if got, err := st.Get(ctx, testApp, occ.ID); err != nil || got.FlowKey != key {
					t.Fatalf("after replace: flow key %q (%v), want %q", got.FlowKey, err, key)
				}
			}
		})
	}
}
