package redisstore

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestCreateManyAsOneByOne: CreateMany (schedulemany.lua, one call per
// shard and createBatch events) gives what creating the events one by one
// gives: new events created with their outbox 'create' entries and due,
// an identity that exists (before the call, or earlier in the same batch)
// answered with the existing event and left as it was, more events than one
// call takes in one shard (~390 per shard against createBatch), over two
// shards, on miniredis and a real redis-server.
func TestCreateManyAsOneByOne(t *testing.T) {
	t.Parallel()
	for _, be := range chunkBackends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, err := New(ctx, be.open(t), Config{Namespace: testNS, Shards: 2, Retention: testRetention, WakeHorizon: testHorizon,
				EventLayout: be.layout})
			if err != nil {
				t.Fatal(err)
			}
			now := time.UnixMilli(1_700_000_000_000).UTC()
			before := codecEvents(now)[0]
			if ex, err := st.Create(ctx, before, now); err != nil || ex != nil {
				t.Fatalf("create: %v, %v", ex, err)
			}
			var evs []*scheduler.Event
			for i := range 3*createBatch + 7 {
				evs = append(evs, &scheduler.Event{App: testApp, ID: "m" + strconv.Itoa(i), URL: "https://example.com/?i=" + strconv.Itoa(i),
					Method: "POST", Body: []byte(`{"i":` + strconv.Itoa(i) + `}`), DueAt: now, CreatedAt: now, FlowKey: "k" + strconv.Itoa(i%2)})
			}
			dupInBatch := *evs[5]
			dupInBatch.URL = "https://example.com/other"
			evs = append(evs, before, &dupInBatch)
			res, err := st.CreateMany(ctx, evs, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != len(evs) {
				t.Fatalf("%d results for %d events", len(res), len(evs))
			}
			for i, r := range res[:len(res)-2] {
				if r.Err != nil || r.Existing != nil {
					t.Fatalf("event %d: %+v", i, r)
				}
				got, err := st.Get(ctx, testApp, evs[i].ID)
				if err != nil || got.URL != evs[i].URL || string(got.Body) != string(evs[i].Body) || got.FlowKey != evs[i].FlowKey ||
					got.Status != scheduler.StatusPending || !got.DueAt.Equal(now) {
					t.Fatalf("event %d reads %+v, %v", i, got, err)
				}
			}
			want, _ := st.Get(ctx, testApp, before.ID)
			if ex := res[len(res)-2].Existing; ex == nil || !reflect.DeepEqual(ex, want) {
				t.Errorf("existing before the batch: %+v, want %+v", ex, want)
			}
			if ex := res[len(res)-1].Existing; ex == nil || ex.URL != evs[5].URL {
				t.Errorf("second of an identity in one batch: %+v, want the first", ex)
			}
			// Every new event is due and has its create entry.
			due, creates := 0, 0
			for sh := range st.Shards() {
				n, err := st.Client().ZCard(ctx, st.k.due(sh)).Result()
				if err != nil {
					t.Fatal(err)
				}
				due += int(n)
				recs, err := st.ReadOutbox(ctx, sh, "t", false, 10_000)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if r.Kind == scheduler.RecordCreate {
						creates++
						if r.Event == nil || r.Event.URL == "" || r.Event.DueAt.IsZero() {
							t.Fatalf("create record %+v", r)
						}
					}
				}
			}
			if want := len(evs) - 2 + 1; due != want || creates != want {
				t.Errorf("%d due and %d create entries, want %d each", due, creates, want)
			}
		})
	}
}

// TestCreateManyWakes: a batch publishes one wake-up (the shard number) when
// one of its events moves the shard's earliest due time forward within the
// horizon, as single creates do, and none when no event does: all due after
// the earliest pending one, or beyond the horizon.
func TestCreateManyWakes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.subscribe(t)
	create := func(evs ...*scheduler.Event) {
		t.Helper()
		res, err := b.store.CreateMany(context.Background(), evs, b.now)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil || r.Existing != nil {
				t.Fatalf("create: %+v", r)
			}
		}
	}
	create(newEvent("far", b.at(time.Hour), b.now), newEvent("soon", b.at(100*time.Millisecond), b.now),
		newEvent("later", b.at(200*time.Millisecond), b.now))
	if got := w.drain(); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("first batch: wake-ups %q, want one for shard 0", got)
	}
	create(newEvent("after", b.at(300*time.Millisecond), b.now), newEvent("beyond", b.at(10*time.Second), b.now))
	if got := w.drain(); len(got) != 0 {
		t.Fatalf("batch due after the earliest or beyond the horizon: wake-ups %q, want none", got)
	}
	create(newEvent("now", b.now, b.now))
	if got := w.drain(); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("batch due before the earliest: wake-ups %q, want one", got)
	}
}
