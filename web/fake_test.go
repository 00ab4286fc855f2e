package web

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// fakeBackend is an in-memory Backend with the scheduler's status rules.
type fakeBackend struct {
	mu     sync.Mutex
	clock  *fakeClock
	events []*scheduler.Event // creation order
	dash   scheduler.Dashboard
	// Errors to return instead of answering.
	dashErr, searchErr, getErr, actErr error
	searches                           int
}

func newFakeBackend(clock *fakeClock) *fakeBackend {
	return &fakeBackend{clock: clock}
}

func (f *fakeBackend) add(ev *scheduler.Event) *scheduler.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Method == "" {
		ev.Method = "POST"
	}
	if ev.URL == "" {
		ev.URL = "https://example.com/hook/" + ev.ID
	}
	if ev.Status == "" {
		ev.Status = scheduler.StatusPending
	}
	now := f.clock.Now()
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now.Add(time.Duration(len(f.events)) * time.Millisecond)
	}
	if ev.UpdatedAt.IsZero() {
		ev.UpdatedAt = ev.CreatedAt
	}
	if ev.DueAt.IsZero() {
		ev.DueAt = now.Add(5 * time.Minute)
	}
	f.events = append(f.events, ev)
	return ev
}

func (f *fakeBackend) find(app, id string) *scheduler.Event {
	for _, ev := range f.events {
		if ev.App == app && ev.ID == id {
			return ev
		}
	}
	return nil
}

// status returns an event's status, for assertions.
func (f *fakeBackend) status(app, id string) scheduler.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev := f.find(app, id); ev != nil {
		return ev.Status
	}
	return ""
}

func (f *fakeBackend) Dashboard(context.Context) (scheduler.Dashboard, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dash, f.dashErr
}

func matches(q scheduler.SearchQuery, ev *scheduler.Event) bool {
	switch {
	case q.App != "" && ev.App != q.App,
		q.Status != "" && ev.Status != q.Status,
		len(q.Statuses) > 0 && !slices.Contains(q.Statuses, ev.Status),
		q.Q != "" && !strings.HasPrefix(ev.ID, q.Q) && !strings.Contains(ev.URL, q.Q),
		!q.From.IsZero() && ev.DueAt.Before(q.From),
		!q.To.IsZero() && !ev.DueAt.Before(q.To):
		return false
	}
	return true
}

// Search lists newest first; the cursor is the offset.
func (f *fakeBackend) Search(_ context.Context, q scheduler.SearchQuery) (scheduler.SearchPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.searches++
	if f.searchErr != nil {
		return scheduler.SearchPage{}, f.searchErr
	}
	if q.Status != "" && !q.Status.Valid() {
		return scheduler.SearchPage{}, &scheduler.ValidationError{Field: "status", Message: "unknown status " + strconv.Quote(string(q.Status))}
	}
	if q.Limit == 0 {
		q.Limit = scheduler.DefaultSearchLimit
	}
	if q.Limit > scheduler.MaxSearchLimit {
		return scheduler.SearchPage{}, &scheduler.ValidationError{Field: "limit", Message: "too big"}
	}
	var all []*scheduler.Event
	for i := len(f.events) - 1; i >= 0; i-- {
		if matches(q, f.events[i]) {
			all = append(all, f.events[i])
		}
	}
	off := 0
	if q.Cursor != "" {
		var err error
		if off, err = strconv.Atoi(q.Cursor); err != nil {
			return scheduler.SearchPage{}, &scheduler.ValidationError{Field: "cursor", Message: "bad cursor"}
		}
	}
	off = min(off, len(all))
	end := min(off+q.Limit, len(all))
	page := scheduler.SearchPage{}
	for _, ev := range all[off:end] {
		cp := *ev
		page.Events = append(page.Events, &cp)
	}
	if end < len(all) {
		page.NextCursor = strconv.Itoa(end)
	}
	return page, nil
}

func (f *fakeBackend) Get(_ context.Context, app, id string) (*scheduler.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return nil, f.getErr
	}
	ev := f.find(app, id)
	if ev == nil {
		return nil, scheduler.ErrNotFound
	}
	cp := *ev
	return &cp, nil
}

func (f *fakeBackend) change(app, id string, allowed func(scheduler.Status) bool, op string, apply func(*scheduler.Event)) (*scheduler.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.actErr != nil {
		return nil, f.actErr
	}
	ev := f.find(app, id)
	if ev == nil {
		return nil, scheduler.ErrNotFound
	}
	if !allowed(ev.Status) {
		return nil, &scheduler.StatusError{Status: ev.Status, Op: op}
	}
	apply(ev)
	ev.UpdatedAt = f.clock.Now()
	cp := *ev
	return &cp, nil
}

func isPending(s scheduler.Status) bool { return s == scheduler.StatusPending }

func (f *fakeBackend) Cancel(_ context.Context, app, id string) (*scheduler.Event, error) {
	return f.change(app, id, isPending, "deleted", func(ev *scheduler.Event) {
		ev.Status, ev.FinishedAt = scheduler.StatusCancelled, f.clock.Now()
	})
}

func (f *fakeBackend) Retry(_ context.Context, app, id string) (*scheduler.Event, error) {
	return f.change(app, id, scheduler.Status.Retryable, "retried", func(ev *scheduler.Event) {
		ev.Status, ev.Attempts, ev.DueAt, ev.FinishedAt = scheduler.StatusPending, 0, f.clock.Now(), time.Time{}
	})
}

func (f *fakeBackend) RunNow(_ context.Context, app, id string) (*scheduler.Event, error) {
	return f.change(app, id, isPending, "run now", func(ev *scheduler.Event) { ev.DueAt = f.clock.Now() })
}

func (f *fakeBackend) bulk(q scheduler.SearchQuery, allowed []scheduler.Status, act func(context.Context, string, string) (*scheduler.Event, error)) (int, error) {
	var st []scheduler.Status
	for _, s := range allowed {
		if (q.Status == "" || q.Status == s) && (len(q.Statuses) == 0 || slices.Contains(q.Statuses, s)) {
			st = append(st, s)
		}
	}
	if len(st) == 0 {
		return 0, nil
	}
	q.Status, q.Statuses = "", st
	f.mu.Lock()
	var ids [][2]string
	for _, ev := range f.events {
		if matches(q, ev) {
			ids = append(ids, [2]string{ev.App, ev.ID})
		}
	}
	f.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, err := act(context.Background(), id[0], id[1]); err == nil {
			n++
		}
	}
	return n, nil
}

func (f *fakeBackend) BulkRetry(_ context.Context, q scheduler.SearchQuery) (int, error) {
	return f.bulk(q, []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable, scheduler.StatusCancelled}, f.Retry)
}

func (f *fakeBackend) BulkCancel(_ context.Context, q scheduler.SearchQuery) (int, error) {
	return f.bulk(q, []scheduler.Status{scheduler.StatusPending}, f.Cancel)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
