package web

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// fakeSubStore keeps subscriptions in memory for a real topic.Subscriptions,
// so the pages meet the domain's own validation (filters included).
type fakeSubStore struct {
	mu   sync.Mutex
	subs map[[2]string]*topic.Subscription
	rev  map[string]int64
	// err, when set, is returned by every call.
	err error
}

func newFakeSubStore() *fakeSubStore {
	return &fakeSubStore{subs: map[[2]string]*topic.Subscription{}, rev: map[string]int64{}}
}

func cloneSub(s *topic.Subscription) *topic.Subscription {
	cp := *s
	cp.Headers = maps.Clone(s.Headers)
	return &cp
}

func (f *fakeSubStore) PutSubscription(_ context.Context, s *topic.Subscription, replace bool) (*topic.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	k := [2]string{s.App, s.ID}
	old := f.subs[k]
	if old != nil && !replace {
		return cloneSub(old), nil
	}
	if old != nil {
		s.CreatedAt = old.CreatedAt
	}
	f.subs[k] = cloneSub(s)
	f.rev[s.App]++
	if old != nil {
		return cloneSub(old), nil
	}
	return nil, nil
}

func (f *fakeSubStore) GetSubscription(_ context.Context, app, id string) (*topic.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	s := f.subs[[2]string{app, id}]
	if s == nil {
		return nil, topic.ErrSubscriptionNotFound
	}
	return cloneSub(s), nil
}

func (f *fakeSubStore) DeleteSubscription(_ context.Context, app, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	k := [2]string{app, id}
	if f.subs[k] == nil {
		return topic.ErrSubscriptionNotFound
	}
	delete(f.subs, k)
	f.rev[app]++
	return nil
}

// ListSubscriptions pages by offset; the cursor is the last key seen.
func (f *fakeSubStore) ListSubscriptions(_ context.Context, app, name, cursor string, limit int) ([]*topic.Subscription, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, "", f.err
	}
	var all []*topic.Subscription
	for _, s := range f.subs {
		if (app == "" || s.App == app) && (name == "" || s.Topic == name) {
			all = append(all, s)
		}
	}
	key := func(s *topic.Subscription) string { return s.App + "\x00" + s.Topic + "\x00" + s.ID }
	slices.SortFunc(all, func(a, b *topic.Subscription) int { return cmp.Compare(key(a), key(b)) })
	var out []*topic.Subscription
	for _, s := range all {
		if cursor != "" && key(s) <= cursor {
			continue
		}
		if len(out) == limit {
			return out, key(out[len(out)-1]), nil
		}
		out = append(out, cloneSub(s))
	}
	return out, "", nil
}

func (f *fakeSubStore) AppSubscriptions(_ context.Context, app string) ([]*topic.Subscription, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*topic.Subscription
	for _, s := range f.subs {
		if s.App == app {
			out = append(out, cloneSub(s))
		}
	}
	return out, f.rev[app], f.err
}

func (f *fakeSubStore) SubscriptionRevision(_ context.Context, app string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev[app], f.err
}

func (f *fakeSubStore) get(app, id string) *topic.Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.subs[[2]string{app, id}]; s != nil {
		return cloneSub(s)
	}
	return nil
}

// fakeMessages is an in-memory TopicMessages.
type fakeMessages struct {
	mu   sync.Mutex
	msgs []*topic.Message // publication order
	err  error
	// lists records the queries List was asked.
	lists []topic.MessageQuery
}

func (f *fakeMessages) add(m *topic.Message) *topic.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Mode == "" {
		m.Mode = topic.ModeIndependent
	}
	if m.Status == "" {
		m.Status = topic.MessagePending
	}
	f.msgs = append(f.msgs, m)
	return m
}

func (f *fakeMessages) find(app, id string) *topic.Message {
	for _, m := range f.msgs {
		if m.App == app && m.ID == id {
			return m
		}
	}
	return nil
}

func (f *fakeMessages) Get(_ context.Context, app, id string) (*topic.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	m := f.find(app, id)
	if m == nil {
		return nil, scheduler.ErrNotFound
	}
	cp := *m
	return &cp, nil
}

// List lists newest first, without paging (the pages ask for one page).
func (f *fakeMessages) List(_ context.Context, q topic.MessageQuery) ([]*topic.Message, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, q)
	if f.err != nil {
		return nil, "", f.err
	}
	var out []*topic.Message
	for i := len(f.msgs) - 1; i >= 0; i-- {
		m := f.msgs[i]
		if (q.App == "" || m.App == q.App) && (q.Topic == "" || m.Topic == q.Topic) && (q.Status == "" || m.Status == q.Status) {
			cp := *m
			out = append(out, &cp)
			if len(out) == q.Limit {
				break
			}
		}
	}
	return out, "", nil
}

func (f *fakeMessages) Cancel(_ context.Context, app, id string) (*topic.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	m := f.find(app, id)
	if m == nil {
		return nil, scheduler.ErrNotFound
	}
	if m.Status != topic.MessagePending {
		return nil, &scheduler.StatusError{Status: scheduler.Status(m.Status), Op: "cancelled"}
	}
	m.Status = topic.MessageCancelled
	cp := *m
	return &cp, nil
}

func (f *fakeMessages) status(app, id string) topic.MessageStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.find(app, id); m != nil {
		return m.Status
	}
	return ""
}

// withTopics gives a test UI Topics over fresh fakes, returned through the pointers.
func withTopics(store **fakeSubStore, msgs **fakeMessages) func(*Config) {
	return func(cfg *Config) {
		*store, *msgs = newFakeSubStore(), &fakeMessages{}
		subs := topic.NewSubscriptions(*store, topic.SubscriptionsConfig{
			Clock:         cfg.Clock,
			CompileFilter: func(src string) error { _, err := topic.CompileFilter(src); return err },
		})
		cfg.Topics = &Topics{Subscriptions: subs, Messages: *msgs}
	}
}

// hasText reports whether s contains every one of want.
func hasText(s string, want ...string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
