package redisstore

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// testSchedule is a schedule with every field set, as the API would store it.
func testSchedule(app, id string, at time.Time) *schedule.State {
	return &schedule.State{
		Schedule: &schedule.Schedule{App: app, ID: id, Every: "90s", Timezone: "Europe/Rome",
			StartAt: at.Add(time.Minute), EndAt: at.Add(24 * time.Hour), Paused: true,
			URL: "https://example.com/" + id, Method: "PUT", Headers: map[string]string{"X-A": "1", "X-B": "two"},
			Body: []byte{0, 1, 2, 0xff, '"', '\n'}, MaxAttempts: 4, Timeout: 7 * time.Second,
			MinBackoff: 1500 * time.Millisecond, MaxBackoff: time.Minute, CallbackURL: "https://example.com/cb",
			FailureCallbackURL: "https://example.com/fail", FlowKey: "k:1", CreatedAt: at, UpdatedAt: at.Add(time.Second)},
		Next: at.Add(3 * time.Minute),
		Runs: []time.Time{at.Add(90 * time.Second), at.Add(time.Minute)},
	}
}

func TestScheduleRecordRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	want := testSchedule("shop", "nightly", b.now)
	rev, err := b.store.WriteSchedule(ctx, want, 0)
	if err != nil || rev != 1 {
		t.Fatalf("create = %d, %v; want revision 1", rev, err)
	}
	got, err := b.store.ReadSchedule(ctx, "shop", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != 1 {
		t.Errorf("read revision %d, want 1", got.Rev)
	}
	if !reflect.DeepEqual(got.Schedule, want.Schedule) {
		t.Errorf("read back\n%+v\nwant\n%+v", *got.Schedule, *want.Schedule)
	}
	if !got.Next.Equal(want.Next) || !slices.EqualFunc(got.Runs, want.Runs, time.Time.Equal) {
		t.Errorf("next %v runs %v, want %v %v", got.Next, got.Runs, want.Next, want.Runs)
	}

	// Zero optional times stay zero; nil body and headers stay nil.
	bare := &schedule.State{Schedule: &schedule.Schedule{App: "shop", ID: "bare", Every: "1s",
		URL: "https://example.com/", Method: "POST", CreatedAt: b.now, UpdatedAt: b.now}}
	if _, err := b.store.WriteSchedule(ctx, bare, 0); err != nil {
		t.Fatal(err)
	}
	got, err = b.store.ReadSchedule(ctx, "shop", "bare")
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartAt.IsZero() || !got.EndAt.IsZero() || !got.Next.IsZero() || got.Runs != nil || got.Body != nil || got.Headers != nil {
		t.Errorf("bare schedule read back as %+v next %v runs %v", *got.Schedule, got.Next, got.Runs)
	}
	if _, err := b.store.ReadSchedule(ctx, "shop", "none"); !errors.Is(err, schedule.ErrScheduleNotFound) {
		t.Errorf("read of a missing schedule: %v, want ErrScheduleNotFound", err)
	}
}

func TestScheduleCompareAndSet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	st := testSchedule("shop", "s", b.now)
	if rev, err := b.store.WriteSchedule(ctx, st, 0); err != nil || rev != 1 {
		t.Fatalf("create = %d, %v; want 1", rev, err)
	}
	// A second create-only write is refused and changes nothing.
	other := testSchedule("shop", "s", b.now)
	other.URL = "https://example.com/other"
	if _, err := b.store.WriteSchedule(ctx, other, 0); !errors.Is(err, schedule.ErrRevChanged) {
		t.Fatalf("second create: %v, want ErrRevChanged", err)
	}
	// At the current revision: written, bumped.
	st.URL = "https://example.com/v2"
	if rev, err := b.store.WriteSchedule(ctx, st, 1); err != nil || rev != 2 {
		t.Fatalf("write at 1 = %d, %v; want 2", rev, err)
	}
	// At a stale one: refused.
	if _, err := b.store.WriteSchedule(ctx, other, 1); !errors.Is(err, schedule.ErrRevChanged) {
		t.Fatalf("write at stale revision 1: %v, want ErrRevChanged", err)
	}
	got, _ := b.store.ReadSchedule(ctx, "shop", "s")
	if got.Rev != 2 || got.URL != "https://example.com/v2" {
		t.Fatalf("after the refused writes: rev %d url %s, want 2 .../v2", got.Rev, got.URL)
	}
	// Delete at a stale revision: refused; at the current one: gone.
	if err := b.store.DeleteSchedule(ctx, "shop", "s", 1); !errors.Is(err, schedule.ErrRevChanged) {
		t.Fatalf("delete at stale revision: %v, want ErrRevChanged", err)
	}
	if err := b.store.DeleteSchedule(ctx, "shop", "s", 2); err != nil {
		t.Fatalf("delete at 2: %v", err)
	}
	if _, err := b.store.ReadSchedule(ctx, "shop", "s"); !errors.Is(err, schedule.ErrScheduleNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
	if err := b.store.DeleteSchedule(ctx, "shop", "s", 2); !errors.Is(err, schedule.ErrScheduleNotFound) {
		t.Errorf("delete of a deleted schedule: %v, want ErrScheduleNotFound", err)
	}
	if _, err := b.store.WriteSchedule(ctx, st, 2); !errors.Is(err, schedule.ErrScheduleNotFound) {
		t.Errorf("write at 2 to a deleted schedule: %v, want ErrScheduleNotFound", err)
	}
	// Created again from scratch.
	if rev, err := b.store.WriteSchedule(ctx, st, 0); err != nil || rev != 1 {
		t.Errorf("create after delete = %d, %v; want 1", rev, err)
	}
}

func TestListSchedules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, k := range []string{"shop/c", "shop/a", "blog/z", "shop/b", "blog/y", "gone/g", "shop/d"} {
		app, id, _ := strings.Cut(k, "/")
		if _, err := b.store.WriteSchedule(ctx, testSchedule(app, id, b.now), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range [][2]string{{"gone", "g"}, {"shop", "d"}} {
		if err := b.store.DeleteSchedule(ctx, k[0], k[1], 1); err != nil {
			t.Fatal(err)
		}
	}
	all := func(app string, limit int) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 20 {
			page, next, err := b.store.ListSchedules(ctx, app, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("page of %d, limit %d", len(page), limit)
			}
			for _, s := range page {
				out = append(out, s.App+"/"+s.ID)
			}
			if next == "" {
				return out
			}
			if len(page) == 0 {
				t.Fatalf("empty page with a next cursor %q", next)
			}
			cursor = next
		}
		t.Fatal("listing does not end")
		return nil
	}
	want := []string{"blog/y", "blog/z", "shop/a", "shop/b", "shop/c"}
	for _, limit := range []int{1, 2, 3, 5, 50} {
		if got := all("", limit); !slices.Equal(got, want) {
			t.Errorf("every app, limit %d: %v, want %v", limit, got, want)
		}
	}
	for _, limit := range []int{1, 2, 3} {
		if got := all("shop", limit); !slices.Equal(got, want[2:]) {
			t.Errorf("shop, limit %d: %v, want %v", limit, got, want[2:])
		}
	}
	if got := all("gone", 10); len(got) != 0 {
		t.Errorf("an app whose schedules are deleted lists %v", got)
	}
	// Exactly a page: the last page says so, or the next one is empty.
	if page, next, err := b.store.ListSchedules(ctx, "blog", "", 2); err != nil || len(page) != 2 || next != "" {
		t.Errorf("blog, limit 2 = %d schedules, next %q, %v; want 2 and no next page", len(page), next, err)
	}

	for _, c := range []struct{ app, cursor string }{{"", "nocursor"}, {"", "bad app/x"}, {"", "shop/"}, {"blog", "shop/a"}} {
		_, _, err := b.store.ListSchedules(ctx, c.app, c.cursor, 10)
		var ve *scheduler.ValidationError
		if !errors.As(err, &ve) || ve.Field != "cursor" {
			t.Errorf("app %q cursor %q: %v, want a ValidationError on cursor", c.app, c.cursor, err)
		}
	}
}

func TestReplacePending(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	created := b.at(-time.Minute)
	occ := newEvent("s@1700000060000", b.at(time.Minute), created)
	occ.Kind = scheduler.KindOccurrence
	b.create(t, occ)

	// PENDING: replaced by the new template, its created time kept.
	repl := newEvent(occ.ID, occ.DueAt, b.now)
	repl.Kind = scheduler.KindOccurrence
	repl.URL = "https://example.com/v2"
	repl.Headers = map[string]string{"X-V": "2"}
	if ex, err := b.store.ReplacePending(ctx, repl, b.now); err != nil || ex != nil {
		t.Fatalf("replace a PENDING event = %v, %v; want nil, nil", ex, err)
	}
	got := b.get(t, occ.ID)
	if got.URL != repl.URL || got.Headers["X-V"] != "2" || got.Status != scheduler.StatusPending ||
		!got.CreatedAt.Equal(created) || !got.DueAt.Equal(occ.DueAt) || got.Kind != scheduler.KindOccurrence {
		t.Fatalf("after replace: %+v; want url %s, PENDING, created %v", got, repl.URL, created)
	}
	if s, ok := zscore(t, b.mr, b.dueKey(occ.ID), testApp+"/"+occ.ID); !ok || int64(s) != occ.DueAt.UnixMilli() {
		t.Errorf("due set score %v (present %v), want %d", s, ok, occ.DueAt.UnixMilli())
	}

	// A missing one: created.
	fresh := newEvent("s@1700000120000", b.at(2*time.Minute), b.now)
	if ex, err := b.store.ReplacePending(ctx, fresh, b.now); err != nil || ex != nil {
		t.Fatalf("replace a missing event = %v, %v; want nil, nil", ex, err)
	}
	if got := b.get(t, fresh.ID); got.URL != fresh.URL || got.Status != scheduler.StatusPending {
		t.Errorf("created by replace: %+v", got)
	}

	// CANCELLED (a head left and come back to): pending again.
	if _, err := b.store.Cancel(ctx, testApp, fresh.ID, b.now); err != nil {
		t.Fatal(err)
	}
	again := newEvent(fresh.ID, fresh.DueAt, b.now)
	again.URL = "https://example.com/again"
	if ex, err := b.store.ReplacePending(ctx, again, b.now); err != nil || ex != nil {
		t.Fatalf("replace a CANCELLED event = %v, %v; want nil, nil", ex, err)
	}
	if got := b.get(t, fresh.ID); got.URL != again.URL || got.Status != scheduler.StatusPending || !got.FinishedAt.IsZero() {
		t.Errorf("after replacing a CANCELLED event: %+v, want PENDING to %s", got, again.URL)
	}
	if _, ok := zscore(t, b.mr, b.dueKey(fresh.ID), testApp+"/"+fresh.ID); !ok {
		t.Error("the replaced CANCELLED event is not in the due set")
	}

	// Claimed (PROCESSING): left alone and returned.
	c := b.claim(t, testWorker, 10, b.at(time.Minute))
	if len(c.Events) != 1 || c.Events[0].ID != occ.ID {
		t.Fatalf("claim: %v, want %s", ids(c.Events), occ.ID)
	}
	late := newEvent(occ.ID, occ.DueAt, b.now)
	late.URL = "https://example.com/v3"
	ex, err := b.store.ReplacePending(ctx, late, b.at(time.Minute))
	if err != nil || ex == nil || ex.Status != scheduler.StatusProcessing || ex.URL != repl.URL {
		t.Fatalf("replace a PROCESSING event = %+v, %v; want it returned unchanged", ex, err)
	}
	if got := b.get(t, occ.ID); got.URL != repl.URL || got.Status != scheduler.StatusProcessing || got.Worker != testWorker {
		t.Errorf("the claimed event changed: %+v", got)
	}
}
