package scheduler_test

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/redisstore"
)

type schedBundle struct {
	sched *scheduler.Scheduler
	store *redisstore.Store
	mr    *miniredis.Miniredis
	clock *scheduler.ManualClock
}

// advance moves both the scheduler's clock and the Redis server's clock
// (the scheduler lets the store use the server clock for "now").
func (b *schedBundle) advance(d time.Duration) time.Time {
	now := b.clock.Advance(d)
	b.mr.SetTime(now)
	return now
}

func setupScheduler(t *testing.T) *schedBundle {
	t.Helper()
	st, mr := storetest.Miniredis(t, redisstore.Config{Namespace: "t", Shards: 1})
	clock := scheduler.NewManualClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	mr.SetTime(clock.Now())
	return &schedBundle{sched: scheduler.New(st, scheduler.Config{Clock: clock}), store: st, mr: mr, clock: clock}
}

func newSchedEvent(id string, due time.Time) *scheduler.Event {
	return &scheduler.Event{
		App: "shop", ID: id, URL: "https://example.com/hook", Method: "POST",
		Headers: map[string]string{"X-Trace": "1"}, Body: []byte(`{"a":1}`), DueAt: due,
	}
}

func (b *schedBundle) create(t *testing.T, ev *scheduler.Event) *scheduler.Event {
	t.Helper()
	got, created, err := b.sched.Create(context.Background(), ev, scheduler.CreateOptions{})
	if err != nil || !created {
		t.Fatalf("Create %s = %v, %v", ev.ID, created, err)
	}
	return got
}

// fail claims the event and records a final FAILED outcome, as a worker would.
func (b *schedBundle) fail(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	now := b.clock.Now()
	c, err := b.store.Claim(ctx, 0, "w1", 10, time.Minute, now)
	if err != nil || len(c.Events) != 1 || c.Events[0].ID != id {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	l := scheduler.Lease{App: "shop", ID: id, Worker: "w1", Attempt: c.Events[0].Attempts}
	o := scheduler.Outcome{Status: scheduler.StatusFailed,
		Attempt: scheduler.Attempt{Attempt: l.Attempt, At: now.UnixMilli(), StatusCode: 400, Worker: "w1"}}
	if ok, err := b.store.Finish(ctx, l, o, now); !ok || err != nil {
		t.Fatalf("Finish = %v, %v", ok, err)
	}
}

func TestSchedulerCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("generates an id when absent", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		ev := newSchedEvent("", b.clock.Now().Add(time.Hour))
		got, created, err := b.sched.Create(ctx, ev, scheduler.CreateOptions{})
		if err != nil || !created {
			t.Fatalf("Create = %v, %v", created, err)
		}
		if len(got.ID) != 32 {
			t.Fatalf("id %q: want 32 hex digits", got.ID)
		}
		if _, err := hex.DecodeString(got.ID); err != nil {
			t.Fatalf("id %q is not hex: %v", got.ID, err)
		}
		stored, err := b.sched.Get(ctx, "shop", got.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if stored.Status != scheduler.StatusPending || !stored.CreatedAt.Equal(b.clock.Now()) ||
			!stored.DueAt.Equal(ev.DueAt) || string(stored.Body) != `{"a":1}` || stored.Headers["X-Trace"] != "1" {
			t.Fatalf("stored = %+v", stored)
		}
		// Two generated ids differ and sort by creation.
		b.advance(time.Millisecond)
		second, _, err := b.sched.Create(ctx, newSchedEvent("", b.clock.Now()), scheduler.CreateOptions{})
		if err != nil || second.ID == got.ID || second.ID < got.ID {
			t.Fatalf("second id %q after %q (%v)", second.ID, got.ID, err)
		}
	})

	t.Run("validation errors store nothing", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		ev := newSchedEvent("bad", b.clock.Now())
		ev.URL = "ftp://example.com"
		_, _, err := b.sched.Create(ctx, ev, scheduler.CreateOptions{})
		var ve *scheduler.ValidationError
		if !errors.As(err, &ve) || ve.Field != "url" || !errors.Is(err, scheduler.ErrInvalid) {
			t.Fatalf("Create = %v, want a url validation error", err)
		}
		if _, err := b.sched.Get(ctx, "shop", "bad"); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
	})

	t.Run("normalises the method", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		ev := newSchedEvent("m", b.clock.Now())
		ev.Method = "put"
		b.create(t, ev)
		if got, _ := b.sched.Get(ctx, "shop", "m"); got.Method != "PUT" {
			t.Fatalf("method = %q", got.Method)
		}
	})
}

func TestSchedulerCreateReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		relative bool
		change   func(ev *scheduler.Event)
		dup      bool
	}{
		{name: "identical", change: func(*scheduler.Event) {}},
		{name: "method in lower case", change: func(ev *scheduler.Event) { ev.Method = "post" }},
		{name: "empty method means POST", change: func(ev *scheduler.Event) { ev.Method = "" }},
		{name: "different url", change: func(ev *scheduler.Event) { ev.URL = "https://example.com/other" }, dup: true},
		{name: "different method", change: func(ev *scheduler.Event) { ev.Method = "PUT" }, dup: true},
		{name: "different body", change: func(ev *scheduler.Event) { ev.Body = []byte(`{"a":2}`) }, dup: true},
		{name: "no body", change: func(ev *scheduler.Event) { ev.Body = nil }, dup: true},
		{name: "different header value", change: func(ev *scheduler.Event) { ev.Headers = map[string]string{"X-Trace": "2"} }, dup: true},
		{name: "extra header", change: func(ev *scheduler.Event) { ev.Headers["X-More"] = "1" }, dup: true},
		{name: "no headers", change: func(ev *scheduler.Event) { ev.Headers = nil }, dup: true},
		{name: "different max_attempts", change: func(ev *scheduler.Event) { ev.MaxAttempts = 2 }, dup: true},
		{name: "different timeout", change: func(ev *scheduler.Event) { ev.Timeout = time.Second }, dup: true},
		{name: "different backoff", change: func(ev *scheduler.Event) { ev.MinBackoff = 3 * time.Second }, dup: true},
		{name: "different absolute due time", change: func(ev *scheduler.Event) { ev.DueAt = ev.DueAt.Add(time.Second) }, dup: true},
		{name: "due time off by less than a millisecond", change: func(ev *scheduler.Event) { ev.DueAt = ev.DueAt.Add(300 * time.Microsecond) }},
		{name: "delay replayed later", relative: true, change: func(ev *scheduler.Event) { ev.DueAt = ev.DueAt.Add(5 * time.Second) }},
		{name: "delay replayed with another body", relative: true, change: func(ev *scheduler.Event) { ev.Body = []byte("x") }, dup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupScheduler(t)
			orig := newSchedEvent("e1", b.clock.Now().Add(time.Minute))
			orig.Method = "POST"
			opts := scheduler.CreateOptions{RelativeDue: tt.relative}
			first, created, err := b.sched.Create(ctx, orig, opts)
			if err != nil || !created {
				t.Fatalf("first Create = %v, %v", created, err)
			}

			b.advance(5 * time.Second)
			again := newSchedEvent("e1", first.DueAt)
			tt.change(again)
			got, created, err := b.sched.Create(ctx, again, opts)
			if created {
				t.Fatalf("replay created a second event")
			}
			if tt.dup {
				if !errors.Is(err, scheduler.ErrDuplicate) {
					t.Fatalf("Create = %v, want ErrDuplicate", err)
				}
			} else if err != nil {
				t.Fatalf("Create = %v, want an idempotent replay", err)
			}
			// Either way the stored event is returned, unchanged.
			if got == nil || got.URL != first.URL || !got.DueAt.Equal(first.DueAt) ||
				!got.CreatedAt.Equal(first.CreatedAt) || string(got.Body) != string(first.Body) {
				t.Fatalf("returned %+v, want the stored event %+v", got, first)
			}
			stored, err := b.sched.Get(ctx, "shop", "e1")
			if err != nil || stored.URL != first.URL || string(stored.Body) != string(first.Body) || !stored.DueAt.Equal(first.DueAt) {
				t.Fatalf("stored event changed: %+v, %v", stored, err)
			}
		})
	}
}

func TestSchedulerReplayAfterAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupScheduler(t)
	orig := b.create(t, newSchedEvent("e", b.clock.Now()))
	b.fail(t, "e")
	// The event finished (and is in its retention window): the same create
	// is still an identical replay, not a new event.
	got, created, err := b.sched.Create(ctx, newSchedEvent("e", orig.DueAt), scheduler.CreateOptions{})
	if err != nil || created || got.Status != scheduler.StatusFailed {
		t.Fatalf("replay = %+v, %v, %v", got, created, err)
	}
}

func TestSchedulerGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupScheduler(t)
	for _, tc := range []struct{ app, id string }{{"shop", "nope"}, {"bad app", "x"}, {"shop", "a/b"}, {"", ""}} {
		if _, err := b.sched.Get(ctx, tc.app, tc.id); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Get(%q, %q) = %v, want ErrNotFound", tc.app, tc.id, err)
		}
	}
}

func TestSchedulerCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		b.create(t, newSchedEvent("e", b.clock.Now().Add(time.Hour)))
		now := b.advance(time.Second)
		got, err := b.sched.Cancel(ctx, "shop", "e")
		if err != nil || got.Status != scheduler.StatusCancelled || !got.UpdatedAt.Equal(now) {
			t.Fatalf("Cancel = %+v, %v", got, err)
		}
		_, err = b.sched.Cancel(ctx, "shop", "e")
		var se *scheduler.StatusError
		if !errors.As(err, &se) || se.Status != scheduler.StatusCancelled || !errors.Is(err, scheduler.ErrConflict) {
			t.Fatalf("second Cancel = %v, want a conflict", err)
		}
	})

	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		b.create(t, newSchedEvent("e", b.clock.Now()))
		b.fail(t, "e")
		_, err := b.sched.Cancel(ctx, "shop", "e")
		if want := "event in status FAILED. Cannot be deleted."; err == nil || err.Error() != want || !errors.Is(err, scheduler.ErrConflict) {
			t.Fatalf("Cancel = %v, want %q", err, want)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		for _, id := range []string{"nope", "a/b"} {
			if _, err := b.sched.Cancel(ctx, "shop", id); !errors.Is(err, scheduler.ErrNotFound) {
				t.Fatalf("Cancel(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})
}

func TestSchedulerRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("failed: attempts reset, history kept, due now", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		b.create(t, newSchedEvent("e", b.clock.Now()))
		b.fail(t, "e")
		before, _ := b.sched.Get(ctx, "shop", "e")
		if before.Attempts != 1 || len(before.History) != 1 {
			t.Fatalf("before retry: %+v", before)
		}
		now := b.advance(time.Hour)
		got, err := b.sched.Retry(ctx, "shop", "e")
		if err != nil {
			t.Fatalf("Retry: %v", err)
		}
		if got.Status != scheduler.StatusPending || got.Attempts != 0 || !got.DueAt.Equal(now) ||
			len(got.History) != 1 || got.History[0].StatusCode != 400 || string(got.Body) != `{"a":1}` {
			t.Fatalf("after retry: %+v", got)
		}
		// The next claim is attempt 1 again.
		c, err := b.store.Claim(ctx, 0, "w2", 10, time.Minute, now)
		if err != nil || len(c.Events) != 1 || c.Events[0].Attempts != 1 {
			t.Fatalf("claim after retry: %+v, %v", c.Events, err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		b.create(t, newSchedEvent("e", b.clock.Now().Add(time.Hour)))
		if _, err := b.sched.Cancel(ctx, "shop", "e"); err != nil {
			t.Fatal(err)
		}
		got, err := b.sched.Retry(ctx, "shop", "e")
		if err != nil || got.Status != scheduler.StatusPending || !got.DueAt.Equal(b.clock.Now()) {
			t.Fatalf("Retry = %+v, %v", got, err)
		}
	})

	t.Run("refused while pending", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		b.create(t, newSchedEvent("e", b.clock.Now().Add(time.Hour)))
		_, err := b.sched.Retry(ctx, "shop", "e")
		var se *scheduler.StatusError
		if !errors.As(err, &se) || se.Status != scheduler.StatusPending || !errors.Is(err, scheduler.ErrConflict) {
			t.Fatalf("Retry = %v, want a conflict", err)
		}
	})

	t.Run("refused when completed", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		b.create(t, newSchedEvent("e", b.clock.Now()))
		now := b.clock.Now()
		c, _ := b.store.Claim(ctx, 0, "w1", 10, time.Minute, now)
		l := scheduler.Lease{App: "shop", ID: "e", Worker: "w1", Attempt: c.Events[0].Attempts}
		if ok, err := b.store.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted,
			Attempt: scheduler.Attempt{Attempt: 1, StatusCode: 200}}, now); !ok || err != nil {
			t.Fatalf("Finish = %v, %v", ok, err)
		}
		_, err := b.sched.Retry(ctx, "shop", "e")
		var se *scheduler.StatusError
		if !errors.As(err, &se) || se.Status != scheduler.StatusCompleted {
			t.Fatalf("Retry = %v, want a conflict", err)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		b := setupScheduler(t)
		if _, err := b.sched.Retry(ctx, "shop", "nope"); !errors.Is(err, scheduler.ErrNotFound) {
			t.Fatalf("Retry = %v, want ErrNotFound", err)
		}
	})
}

func TestSchedulerRunNow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupScheduler(t)
	b.create(t, newSchedEvent("e", b.clock.Now().Add(24*time.Hour)))
	now := b.advance(time.Minute)
	got, err := b.sched.RunNow(ctx, "shop", "e")
	if err != nil || got.Status != scheduler.StatusPending || !got.DueAt.Equal(now) || got.Attempts != 0 {
		t.Fatalf("RunNow = %+v, %v", got, err)
	}
	c, err := b.store.Claim(ctx, 0, "w1", 10, time.Minute, now)
	if err != nil || len(c.Events) != 1 {
		t.Fatalf("claim after RunNow: %+v, %v", c.Events, err)
	}

	b.create(t, newSchedEvent("f", now))
	b.fail(t, "f")
	var se *scheduler.StatusError
	if _, err := b.sched.RunNow(ctx, "shop", "f"); !errors.As(err, &se) || se.Status != scheduler.StatusFailed {
		t.Fatalf("RunNow on FAILED = %v, want a conflict", err)
	}
	if _, err := b.sched.RunNow(ctx, "shop", "nope"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("RunNow unknown = %v", err)
	}
}

// emptyArchive has archived nothing yet.
type emptyArchive struct{}

func (emptyArchive) Get(context.Context, string, string) (*scheduler.Event, error) {
	return nil, scheduler.ErrNotFound
}
func (emptyArchive) Search(context.Context, scheduler.SearchQuery) (scheduler.SearchPage, error) {
	return scheduler.SearchPage{}, nil
}
func (emptyArchive) Counts(context.Context) (map[scheduler.Status]int64, error) { return nil, nil }
func (emptyArchive) PerMinute(context.Context, time.Time) ([]scheduler.MinuteStat, error) {
	return nil, nil
}

// TestGetCompletedWithoutBodyBeforeArchive: an event sent without a body
// that COMPLETED reads, until archived, like one whose body Redis dropped;
// Get still returns it (it was a 404 until the archiver caught up).
func TestGetCompletedWithoutBodyBeforeArchive(t *testing.T) {
	t.Parallel()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "t", Shards: 1})
	sched := scheduler.New(st, scheduler.Config{Archive: emptyArchive{}})
	ctx := context.Background()
	ev := newSchedEvent("nobody", time.Now())
	ev.Body = nil
	if _, _, err := sched.Create(ctx, ev, scheduler.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Claim(ctx, 0, "w", 1, time.Minute, time.Time{})
	if err != nil || len(c.Events) != 1 {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	l := scheduler.Lease{App: "shop", ID: "nobody", Worker: "w", Attempt: 1}
	if _, err := st.Finish(ctx, l, scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{StatusCode: 200}}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, err := sched.Get(ctx, "shop", "nobody")
	if err != nil || got.Status != scheduler.StatusCompleted {
		t.Fatalf("Get = %+v, %v; want the COMPLETED event", got, err)
	}
}
