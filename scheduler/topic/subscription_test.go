package topic_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/store/redisstore"
)

// compileFilter stands in for the filter engine: it refuses "==)" the way a
// parser would, and accepts anything else.
func compileFilter(src string) error {
	if i := strings.Index(src, "==)"); i >= 0 {
		return fmt.Errorf("syntax error at column %d: unexpected )", i+3)
	}
	return nil
}

// countingStore counts the calls fan-out's cache makes.
type countingStore struct {
	topic.SubscriptionStore
	revs, loads atomic.Int64
}

func (s *countingStore) SubscriptionRevision(ctx context.Context, app string) (int64, error) {
	s.revs.Add(1)
	return s.SubscriptionStore.SubscriptionRevision(ctx, app)
}

func (s *countingStore) AppSubscriptions(ctx context.Context, app string) ([]*topic.Subscription, int64, error) {
	s.loads.Add(1)
	return s.SubscriptionStore.AppSubscriptions(ctx, app)
}

type bundle struct {
	subs  *topic.Subscriptions
	store *countingStore
	clock *scheduler.ManualClock
}

func setup(t *testing.T, guard scheduler.URLChecker) *bundle {
	t.Helper()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "topictest"})
	cs := &countingStore{SubscriptionStore: st}
	clock := scheduler.NewManualClock(time.UnixMilli(1_700_000_000_000).UTC())
	return &bundle{store: cs, clock: clock,
		subs: topic.NewSubscriptions(cs, topic.SubscriptionsConfig{Clock: clock, CompileFilter: compileFilter, Guard: guard})}
}

func valid() *topic.Subscription {
	return &topic.Subscription{App: "shop", ID: "s1", Topic: "orders", URL: "https://example.com/hook", Active: true}
}

func TestSubscriptionsConfig(t *testing.T) {
	t.Parallel()
	// Without one, filters are compiled by the filter engine.
	def := topic.SubscriptionsConfig{}.WithDefaults()
	if err := def.Validate(); err != nil {
		t.Fatalf("the zero config with defaults: %v", err)
	}
	if err := def.CompileFilter(`data["x"] ==)`); err == nil {
		t.Fatal("the default CompileFilter accepted a syntax error")
	}
	if err := def.CompileFilter(`data["body"]["x"] == 1 and True`); err != nil {
		t.Fatalf("the default CompileFilter refused a valid filter: %v", err)
	}
	if err := (topic.SubscriptionsConfig{CompileFilter: compileFilter}).WithDefaults().Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	t.Parallel()
	b := setup(t, &delivery.AddressGuard{}) // blocks private and loopback addresses
	long := strings.Repeat("a", 65)
	tests := []struct {
		field  string
		change func(s *topic.Subscription)
	}{
		{"app", func(s *topic.Subscription) { s.App = "" }},
		{"app", func(s *topic.Subscription) { s.App = "sh op" }},
		{"id", func(s *topic.Subscription) { s.ID = long }},
		{"id", func(s *topic.Subscription) { s.ID = "a/b" }},
		{"id", func(s *topic.Subscription) { s.ID = "a:b" }},
		{"topic", func(s *topic.Subscription) { s.Topic = "" }},
		{"topic", func(s *topic.Subscription) { s.Topic = strings.Repeat("t", 129) }},
		{"topic", func(s *topic.Subscription) { s.Topic = "a b" }},
		{"url", func(s *topic.Subscription) { s.URL = "" }},
		{"url", func(s *topic.Subscription) { s.URL = "ftp://example.com/x" }},
		{"url", func(s *topic.Subscription) { s.URL = "http://127.0.0.1/x" }}, // the create-time guard
		{"method", func(s *topic.Subscription) { s.Method = "TRACE" }},
		{"headers", func(s *topic.Subscription) { s.Headers = map[string]string{"Bad Name": "x"} }},
		{"headers", func(s *topic.Subscription) { s.Headers = map[string]string{"X-A": "a\r\nb"} }},
		{"headers", func(s *topic.Subscription) { s.Headers = map[string]string{"Connection": "close"} }},
		{"rollback_url", func(s *topic.Subscription) { s.RollbackURL = "not a url" }},
		{"rollback_url", func(s *topic.Subscription) { s.RollbackURL = "http://10.0.0.1/undo" }},
		{"callback_url", func(s *topic.Subscription) { s.CallbackURL = "mailto:x@example.com" }},
		{"failure_callback_url", func(s *topic.Subscription) { s.FailureCallbackURL = "https://user:pw@example.com/" }},
		{"max_attempts", func(s *topic.Subscription) { s.MaxAttempts = scheduler.MaxMaxAttempts + 1 }},
		{"timeout", func(s *topic.Subscription) { s.Timeout = scheduler.MaxTimeout + time.Second }},
		{"min_backoff", func(s *topic.Subscription) { s.MinBackoff = scheduler.MaxBackoffLimit + time.Second }},
		{"max_backoff", func(s *topic.Subscription) { s.MaxBackoff = -time.Second }},
		{"min_backoff", func(s *topic.Subscription) { s.MinBackoff, s.MaxBackoff = time.Minute, time.Second }},
		{"flow_key", func(s *topic.Subscription) { s.FlowKey = "a b" }},
		{"flow_key", func(s *topic.Subscription) { s.FlowKey = strings.Repeat("k", 129) }},
		{"filter", func(s *topic.Subscription) { s.Filter = `data["x"] ==)` }},
	}
	for _, tt := range tests {
		sub := valid()
		tt.change(sub)
		var ve *scheduler.ValidationError
		err := b.subs.Validate(sub)
		if !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("%+v: %v, want a validation error for %s", sub, err, tt.field)
			continue
		}
		if tt.field != "headers" && !strings.HasPrefix(ve.Message, tt.field) && tt.field != "app" && tt.field != "id" &&
			tt.field != "filter" && tt.field != "topic" {
			t.Errorf("%s: message %q does not name the field", tt.field, ve.Message)
		}
	}
	// The filter's message is the compiler's.
	sub := valid()
	sub.Filter = `x ==)`
	if err := b.subs.Validate(sub); err == nil || !strings.Contains(err.Error(), "syntax error at column") {
		t.Errorf("filter error = %v, want the compiler's message", err)
	}

	ok := valid()
	ok.Method = "put"
	ok.FlowKey = "tenant:42"
	ok.RollbackURL, ok.CallbackURL, ok.FailureCallbackURL = "https://example.com/r", "https://example.com/c", "http://example.com/f"
	if err := b.subs.Validate(ok); err != nil || ok.Method != "PUT" {
		t.Errorf("valid subscription: %v, method %q", err, ok.Method)
	}
}

func TestCreateReplayConflictPut(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	sub, created, err := b.subs.Create(ctx, valid())
	if err != nil || !created || sub.Method != "POST" || !sub.CreatedAt.Equal(b.clock.Now()) {
		t.Fatalf("Create = %+v, %v, %v", sub, created, err)
	}
	b.clock.Advance(time.Minute)
	again, created, err := b.subs.Create(ctx, valid())
	if err != nil || created || !again.CreatedAt.Equal(sub.CreatedAt) {
		t.Fatalf("identical replay = %+v, %v, %v; want the existing one, not created", again, created, err)
	}
	other := valid()
	other.URL = "https://example.com/other"
	if _, _, err := b.subs.Create(ctx, other); !errors.Is(err, topic.ErrSubscriptionExists) || !errors.Is(err, scheduler.ErrDuplicate) {
		t.Fatalf("different content: %v, want ErrSubscriptionExists", err)
	}

	// Put replaces, keeping created_at.
	b.clock.Advance(time.Minute)
	other.Active = false
	put, err := b.subs.Put(ctx, other)
	if err != nil || !put.CreatedAt.Equal(sub.CreatedAt) || !put.UpdatedAt.Equal(b.clock.Now()) {
		t.Fatalf("Put = %+v, %v", put, err)
	}
	got, err := b.subs.Get(ctx, "shop", "s1")
	if err != nil || got.URL != other.URL || got.Active || !got.CreatedAt.Equal(sub.CreatedAt) {
		t.Fatalf("Get after Put = %+v, %v", got, err)
	}

	// A generated id fits the id's charset.
	gen := valid()
	gen.ID = ""
	made, created, err := b.subs.Create(ctx, gen)
	if err != nil || !created || !topic.ValidSubscriptionID(made.ID) {
		t.Fatalf("Create without id = %+v, %v, %v", made, created, err)
	}

	deleted, err := b.subs.Delete(ctx, "shop", "s1")
	if err != nil || deleted.ID != "s1" {
		t.Fatalf("Delete = %+v, %v", deleted, err)
	}
	if _, err := b.subs.Delete(ctx, "shop", "s1"); !errors.Is(err, topic.ErrSubscriptionNotFound) {
		t.Fatalf("second Delete: %v, want ErrSubscriptionNotFound", err)
	}
	if _, err := b.subs.Get(ctx, "shop", "no/such"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Get of an invalid id: %v, want not found", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	for _, id := range []string{"c", "a", "b"} {
		s := valid()
		s.ID = id
		if _, _, err := b.subs.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := b.subs.List(ctx, topic.ListQuery{App: "shop", Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != "a" || page[1].ID != "b" || next == "" {
		t.Fatalf("first page = %v, %q, %v", page, next, err)
	}
	page, next, err = b.subs.List(ctx, topic.ListQuery{App: "shop", Limit: 2, Cursor: next})
	if err != nil || len(page) != 1 || page[0].ID != "c" || next != "" {
		t.Fatalf("second page = %v, %q, %v", page, next, err)
	}
	var ve *scheduler.ValidationError
	for field, q := range map[string]topic.ListQuery{
		"limit": {Limit: topic.MaxListLimit + 1}, "topic": {Topic: "a b"}, "app": {App: "a/b"}, "cursor": {Cursor: "%%"},
	} {
		if _, _, err := b.subs.List(ctx, q); !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("List(%+v) = %v, want a validation error for %s", q, err, field)
		}
	}
}

func TestForTopic(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	mk := func(id, topicName string, active bool) {
		t.Helper()
		s := valid()
		s.ID, s.Topic, s.Active = id, topicName, active
		if _, err := b.subs.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	mk("b", "orders", true)
	mk("a", "orders", true)
	mk("off", "orders", false)
	mk("c", "carts", true)
	ids := func(subs []*topic.Subscription) string {
		var out []string
		for _, s := range subs {
			out = append(out, s.ID)
		}
		return strings.Join(out, ",")
	}
	get := func(topicName string) string {
		t.Helper()
		subs, err := b.subs.ForTopic(ctx, "shop", topicName)
		if err != nil {
			t.Fatal(err)
		}
		return ids(subs)
	}
	if got := get("orders"); got != "a,b" {
		t.Fatalf("ForTopic(orders) = %s, want a,b (the inactive one and other topics left out)", got)
	}
	if got := get("carts"); got != "c" {
		t.Fatalf("ForTopic(carts) = %s, want c", got)
	}
	if got := get("nothing"); got != "" {
		t.Fatalf("ForTopic(nothing) = %s, want none", got)
	}
	if revs, loads := b.store.revs.Load(), b.store.loads.Load(); revs != 3 || loads != 1 {
		t.Fatalf("3 uses: %d revision reads and %d loads, want 3 and 1", revs, loads)
	}

	// A write moves the revision: the next use reloads and sees it.
	mk("off", "orders", true)
	if got := get("orders"); got != "a,b,off" {
		t.Fatalf("ForTopic(orders) after activating off = %s", got)
	}
	if _, err := b.subs.Delete(ctx, "shop", "a"); err != nil {
		t.Fatal(err)
	}
	if got := get("orders"); got != "b,off" {
		t.Fatalf("ForTopic(orders) after deleting a = %s", got)
	}
	if loads := b.store.loads.Load(); loads != 3 {
		t.Fatalf("loads = %d, want 3 (one per revision)", loads)
	}

	// Safe for concurrent use (go test -race).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := b.subs.ForTopic(ctx, "shop", "orders"); err != nil {
				t.Error(err)
			}
		})
	}
	mk("d", "orders", true)
	wg.Wait()
	if got := get("orders"); got != "b,d,off" {
		t.Fatalf("ForTopic(orders) after concurrent use = %s", got)
	}
}
