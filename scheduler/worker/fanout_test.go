package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// topicBundle is a store on miniredis with subscriptions, messages and a
// destination whose answer each test decides per path.
type topicBundle struct {
	st    *redisstore.Store
	sched *scheduler.Scheduler
	subs  *topic.Subscriptions
	msgs  *topic.Messages
	dest  *httptest.Server

	mu  sync.Mutex
	got map[string][]*http.Request // by path
}

func setupTopics(t *testing.T, answer func(path string, n int) int) *topicBundle {
	t.Helper()
	b := &topicBundle{got: map[string][]*http.Request{}}
	b.dest = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		b.mu.Lock()
		b.got[r.URL.Path] = append(b.got[r.URL.Path], r)
		n := len(b.got[r.URL.Path])
		b.mu.Unlock()
		code := http.StatusOK
		if answer != nil {
			code = answer(r.URL.Path, n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(b.dest.Close)
	b.st, _ = storetest.Miniredis(t, redisstore.Config{Namespace: "tp", Shards: 4})
	b.sched = scheduler.New(b.st, scheduler.Config{})
	b.subs = topic.NewSubscriptions(b.st, topic.SubscriptionsConfig{})
	var err error
	if b.msgs, err = topic.NewMessages(b.st, b.sched, topic.MessagesConfig{}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *topicBundle) subscribe(t *testing.T, s topic.Subscription) {
	t.Helper()
	s.App, s.Active = "shop", true
	if s.Topic == "" {
		s.Topic = "orders"
	}
	if s.URL == "" {
		s.URL = b.dest.URL + "/" + s.ID
	}
	if _, created, err := b.subs.Create(context.Background(), &s); err != nil || !created {
		t.Fatalf("subscribe %s: created %v, %v", s.ID, created, err)
	}
}

func (b *topicBundle) runWorker(t *testing.T, id string) {
	t.Helper()
	w := worker.New(b.st, delivery.New(delivery.Config{}), worker.Config{
		ID: id, PollInterval: 20 * time.Millisecond, ReapInterval: 50 * time.Millisecond, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fanout: &worker.Fanout{Store: b.st, Subscribers: b.subs, Events: b.sched},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (b *topicBundle) requests(path string) []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Request(nil), b.got[path]...)
}

func (b *topicBundle) waitStatus(t *testing.T, id string, want topic.MessageStatus) *topic.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := b.msgs.Get(context.Background(), "shop", id)
		if err == nil && m.Status == want {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: message %s is %+v (%v), want %s", id, m, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFanoutDeliversToEveryMatchingSubscription: one delivery per active
// subscription of the topic whose filter matches, with the message's
// headers overlaid by the subscription's and the Cassata-* topic headers; a
// filter failing at run time does not match and is reported.
func TestFanoutDeliversToEveryMatchingSubscription(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, nil)
	b.subscribe(t, topic.Subscription{ID: "all", Headers: map[string]string{"X-Sub": "all", "x-from": "sub"}})
	b.subscribe(t, topic.Subscription{ID: "x1", Filter: `data["body"]["x"] == 1 and data["http_method"] == "post"`})
	b.subscribe(t, topic.Subscription{ID: "x2", Filter: `data["body"]["x"] == 2`})
	b.subscribe(t, topic.Subscription{ID: "broken", Filter: `data["body"]["name"] < 1`})
	b.subscribe(t, topic.Subscription{ID: "other", Topic: "refunds"})
	off := topic.Subscription{ID: "off"}
	b.subscribe(t, off)
	off.App, off.Topic, off.URL, off.Active = "shop", "orders", b.dest.URL+"/off", false
	if _, err := b.subs.Put(context.Background(), &off); err != nil {
		t.Fatal(err)
	}
	msg, created, err := b.msgs.Publish(context.Background(), topic.Publish{App: "shop", ID: "m1", Topic: "orders",
		Headers: map[string]string{"X-From": "publisher", "X-Trace": "t1"}, Body: []byte(`{"x":1,"name":"n"}`)})
	if err != nil || !created || msg.Status != topic.MessagePending {
		t.Fatalf("publish: %+v created %v, %v", msg, created, err)
	}
	b.runWorker(t, "w1")
	m := b.waitStatus(t, "m1", topic.MessageCompleted)

	if len(m.Deliveries) != 2 || m.Deliveries[0].Subscription != "all" || m.Deliveries[1].Subscription != "x1" {
		t.Fatalf("deliveries %+v, want all and x1", m.Deliveries)
	}
	for _, d := range m.Deliveries {
		if d.EventID != "m1~"+d.Subscription || d.Status != scheduler.StatusCompleted || d.Attempts != 1 {
			t.Errorf("delivery %+v", d)
		}
	}
	if len(m.FilterErrors) != 1 || m.FilterErrors[0].Subscription != "broken" || m.FilterErrors[0].Error == "" {
		t.Errorf("filter_errors %+v, want the one of broken", m.FilterErrors)
	}
	time.Sleep(200 * time.Millisecond) // nothing else arrives
	for path, want := range map[string]int{"/all": 1, "/x1": 1, "/x2": 0, "/broken": 0, "/other": 0, "/off": 0} {
		if n := len(b.requests(path)); n != want {
			t.Errorf("%s got %d requests, want %d", path, n, want)
		}
	}
	r := b.requests("/all")[0]
	for h, want := range map[string]string{"X-Sub": "all", "X-From": "sub", "X-Trace": "t1",
		"Cassata-Topic": "orders", "Cassata-Message-Id": "m1", "Cassata-Subscription-Id": "all"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	// A delivery is an ordinary event of the application.
	ev, err := b.sched.Get(context.Background(), "shop", "m1~x1")
	// An independent message without callbacks is not followed: its
	// deliveries do not report back to it (no Parent).
	if err != nil || ev.Status != scheduler.StatusCompleted || ev.Parent != "" || ev.CreatedAt.IsZero() {
		t.Fatalf("delivery event: %+v, %v", ev, err)
	}
	if !m.DueAt.Equal(msg.DueAt) {
		t.Errorf("the message's due_at moved from %s to %s", msg.DueAt, m.DueAt)
	}
	// Every outbox entry of the message and its deliveries is one the
	// archiver can read.
	for sh := 0; sh < b.st.Shards(); sh++ {
		recs, err := b.st.ReadOutbox(context.Background(), sh, "check", false, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Kind == "" {
				t.Errorf("outbox entry %s of shard %d cannot be read: %+v", r.StreamID, sh, r)
			}
		}
	}
	// With its creation time, as every event: the archive needs it.
	if ev.CreatedAt.IsZero() || ev.CreatedAt.Before(m.CreatedAt) {
		t.Errorf("delivery event created at %v, message at %v", ev.CreatedAt, m.CreatedAt)
	}
}

// planAB claims the only due message as worker and records a plan of
// deliveries to subscriptions a and b, as a worker about to fan it out.
func (b *topicBundle) planAB(t *testing.T, worker string) (*scheduler.Event, scheduler.Lease, *topic.Plan) {
	t.Helper()
	ctx := context.Background()
	var carrier *scheduler.Event
	for sh := 0; sh < b.st.Shards() && carrier == nil; sh++ {
		c, err := b.st.Claim(ctx, sh, worker, 10, time.Minute, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Events) == 1 {
			carrier = c.Events[0]
		}
	}
	if carrier == nil || carrier.Kind != scheduler.KindMessage {
		t.Fatalf("claimed %+v, want the message's carrier", carrier)
	}
	plan := `{"d":[{"s":"a","u":"` + b.dest.URL + `/a","m":"POST"},{"s":"b","u":"` + b.dest.URL + `/b","m":"POST"}]}`
	lease := scheduler.Lease{App: "shop", ID: carrier.ID, Worker: worker, Attempt: carrier.Attempts}
	if _, err := b.st.SetPlan(ctx, lease, []byte(plan), time.Time{}); err != nil {
		t.Fatal(err)
	}
	p, err := topic.DecodePlan([]byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	return carrier, lease, p
}

// TestFanoutRepeatedAfterACrashFollowsTheFirstPlan: a worker that recorded
// the plan and created only some deliveries before dying (its lease then
// expires) leaves the rest to the next claim, which follows the recorded
// plan (not the subscriptions as they are now) and creates exactly the
// missing deliveries: each subscriber gets one.
func TestFanoutRepeatedAfterACrashFollowsTheFirstPlan(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, nil)
	ctx := context.Background()
	b.subscribe(t, topic.Subscription{ID: "a"})
	b.subscribe(t, topic.Subscription{ID: "b"})
	if _, _, err := b.msgs.Publish(ctx, topic.Publish{App: "shop", ID: "m2", Topic: "orders", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// The dead worker: claims the carrier, records the plan, creates a's delivery only.
	carrier, _, p := b.planAB(t, "dead")
	if _, err := b.st.Create(ctx, topic.DeliveryEvent(carrier, "m2", p.Deliveries[0], time.Now()), time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Subscribed after the plan: not part of this message.
	b.subscribe(t, topic.Subscription{ID: "late"})
	// Its lease ends (the reaper runs on a clock past it, which puts the
	// message back due at that time: bring it back to the real now).
	for sh := 0; sh < b.st.Shards(); sh++ {
		if _, err := b.st.Reap(ctx, sh, 100, 5, time.Now().Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.st.Nudge(ctx, carrier.Member(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, "w2")
	m := b.waitStatus(t, "m2", topic.MessageCompleted)
	time.Sleep(200 * time.Millisecond)
	for path, want := range map[string]int{"/a": 1, "/b": 1, "/late": 0} {
		if n := len(b.requests(path)); n != want {
			t.Errorf("%s got %d requests, want %d", path, n, want)
		}
	}
	if len(m.Deliveries) != 2 {
		t.Errorf("deliveries %+v, want a and b", m.Deliveries)
	}
}

// TestFanoutStepFailedAfterThePlanCreatesTheDeliveriesLater: a worker
// whose step failed after it recorded the plan (an archive or Redis error
// before any delivery was created) hands the message back with recheck.lua,
// which takes the claim's attempt back, as processMessage does; the next
// claim must still create the planned deliveries.
func TestFanoutStepFailedAfterThePlanCreatesTheDeliveriesLater(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, nil)
	ctx := context.Background()
	b.subscribe(t, topic.Subscription{ID: "a"})
	b.subscribe(t, topic.Subscription{ID: "b"})
	if _, _, err := b.msgs.Publish(ctx, topic.Publish{App: "shop", ID: "m3", Topic: "orders", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	_, lease, _ := b.planAB(t, "failing")
	if err := b.st.Recheck(ctx, lease, time.Now(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, "w2")
	m := b.waitStatus(t, "m3", topic.MessageCompleted)
	for path, want := range map[string]int{"/a": 1, "/b": 1} {
		if n := len(b.requests(path)); n != want {
			t.Errorf("%s got %d requests, want %d", path, n, want)
		}
	}
	if len(m.Deliveries) != 2 {
		t.Errorf("deliveries %+v, want a and b", m.Deliveries)
	}
}

// TestAllOrNothingRollsBack: one delivery answers 400 (final); the sibling
// waiting to retry after a 503 is cancelled; the completed sibling is
// compensated once at its rollback_url; the message ends ROLLED_BACK.
func TestAllOrNothingRollsBack(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, func(path string, n int) int {
		switch path {
		case "/bad":
			return http.StatusBadRequest
		case "/flaky":
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	b.subscribe(t, topic.Subscription{ID: "ok", RollbackURL: b.dest.URL + "/ok-undo"})
	b.subscribe(t, topic.Subscription{ID: "bad", RollbackURL: b.dest.URL + "/bad-undo"})
	b.subscribe(t, topic.Subscription{ID: "flaky", MaxAttempts: 3, MinBackoff: time.Hour, MaxBackoff: time.Hour,
		RollbackURL: b.dest.URL + "/flaky-undo"})
	if _, _, err := b.msgs.Publish(context.Background(), topic.Publish{App: "shop", ID: "m3", Topic: "orders",
		Mode: topic.ModeAllOrNothing, Body: []byte(`{"order":42}`)}); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, "w3")
	m := b.waitStatus(t, "m3", topic.MessageRolledBack)
	// A followed message's deliveries report back to it.
	if ev, err := b.sched.Get(context.Background(), "shop", "m3~ok"); err != nil || ev.Parent != "shop/~m3" {
		t.Errorf("delivery m3~ok: parent %q, %v; want shop/~m3", ev.Parent, err)
	}
	want := map[string]scheduler.Status{"ok": scheduler.StatusCompleted, "bad": scheduler.StatusFailed, "flaky": scheduler.StatusCancelled}
	for _, d := range m.Deliveries {
		if d.Status != want[d.Subscription] {
			t.Errorf("delivery %s is %s, want %s", d.Subscription, d.Status, want[d.Subscription])
		}
	}
	if len(m.Rollbacks) != 1 || m.Rollbacks[0].EventID != "m3!ok" || m.Rollbacks[0].Status != scheduler.StatusCompleted {
		t.Fatalf("rollbacks %+v, want the compensation of ok", m.Rollbacks)
	}
	time.Sleep(200 * time.Millisecond)
	undo := b.requests("/ok-undo")
	if len(undo) != 1 || len(b.requests("/bad-undo")) != 0 || len(b.requests("/flaky-undo")) != 0 {
		t.Fatalf("compensations: ok %d, bad %d, flaky %d; want 1, 0, 0",
			len(undo), len(b.requests("/bad-undo")), len(b.requests("/flaky-undo")))
	}
	if got := undo[0].Header.Get("Cassata-Rollback-Of"); got != "m3~ok" {
		t.Errorf("Cassata-Rollback-Of = %q, want m3~ok", got)
	}
	if n := len(b.requests("/flaky")); n != 1 {
		t.Errorf("flaky got %d requests, want 1 (then cancelled)", n)
	}
	if !strings.Contains(undo[0].Header.Get("Cassata-Message-Id"), "m3") {
		t.Errorf("compensation without Cassata-Message-Id")
	}
}

// runArchiverWithCallbacks runs an archiver (into a fake archive) that
// creates callbacks, as the worker process does.
func (b *topicBundle) runArchiverWithCallbacks(t *testing.T) {
	t.Helper()
	a := worker.NewArchiver(b.st, &fakeArchive{}, worker.ArchiverConfig{Consumer: "arch", PollInterval: 20 * time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFinal: api.NewCallbacks(b.sched, b.msgs, 5, nil).OnFinal})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestCallbacksOncePerFinalStatus: an event's and a message's callbacks
// are created from the outbox, once per final status, as events without
// callbacks of their own; failure callbacks only for failures.
func TestCallbacksOncePerFinalStatus(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, func(path string, n int) int {
		if path == "/bad" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	ctx := context.Background()
	for _, id := range []string{"ok", "bad"} {
		ev := &scheduler.Event{App: "shop", ID: id, URL: b.dest.URL + "/" + id, DueAt: time.Now(), MaxAttempts: 1,
			CallbackURL: b.dest.URL + "/cb-" + id, FailureCallbackURL: b.dest.URL + "/fcb-" + id}
		if _, _, err := b.sched.Create(ctx, ev, scheduler.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b.subscribe(t, topic.Subscription{ID: "s"})
	if _, _, err := b.msgs.Publish(ctx, topic.Publish{App: "shop", ID: "m", Topic: "orders",
		CallbackURL: b.dest.URL + "/cb-m", FailureCallbackURL: b.dest.URL + "/fcb-m"}); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, "w")
	b.runArchiverWithCallbacks(t)
	waitUntil(t, 10*time.Second, "callbacks", func() bool {
		return len(b.requests("/cb-ok")) == 1 && len(b.requests("/cb-bad")) == 1 && len(b.requests("/fcb-bad")) == 1 &&
			len(b.requests("/cb-m")) == 1
	})
	time.Sleep(300 * time.Millisecond)
	for path, want := range map[string]int{"/cb-ok": 1, "/fcb-ok": 0, "/cb-bad": 1, "/fcb-bad": 1, "/cb-m": 1, "/fcb-m": 0} {
		if n := len(b.requests(path)); n != want {
			t.Errorf("%d callbacks at %s, want %d", n, path, want)
		}
	}
	r := b.requests("/cb-m")[0]
	if r.Header.Get(api.HeaderCallbackFor) != "shop/m" {
		t.Errorf("message callback for %q", r.Header.Get(api.HeaderCallbackFor))
	}
	id := b.requests("/cb-ok")[0].Header.Get("Cassata-Event-Id")
	cb, err := b.sched.Get(ctx, "shop", id)
	if err != nil || cb.CallbackURL != "" || cb.FailureCallbackURL != "" || !strings.HasPrefix(id, "ok^cb") {
		t.Errorf("callback event %s: %+v, %v", id, cb, err)
	}
}
