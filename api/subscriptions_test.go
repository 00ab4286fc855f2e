package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/store/redisstore"
)

// subsBundle is the API with subscriptions, messages, schedules and flows over a real store on miniredis;
// with auth, two applications (shop, billing) and the admin token.
type subsBundle struct {
	*bundle
	creds map[string]tenant.Credentials
}

func setupSubs(t *testing.T, auth bool) *subsBundle {
	t.Helper()
	store, mr := storetest.Miniredis(t, redisstore.Config{Namespace: "apitest"})
	clock := &fakeClock{now: time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)}
	sched := scheduler.New(store, scheduler.Config{Clock: clock})
	subs := topic.NewSubscriptions(store, topic.SubscriptionsConfig{Clock: clock, Guard: &delivery.AddressGuard{}})
	msgs, err := topic.NewMessages(store, sched, topic.MessagesConfig{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	apps := tenant.NewApps(store, clock)
	schedules := schedule.New(store, store, schedule.Config{Clock: clock, Guard: &delivery.AddressGuard{}, Events: sched})
	reg := prometheus.NewRegistry()
	a := api.New(api.Config{Scheduler: sched, Gatherer: reg, Logger: slog.New(slog.DiscardHandler), Apps: apps,
		Subscriptions: subs, Messages: msgs, Schedules: schedules, Flows: flow.New(store), RateLimit: -1, Clock: clock})
	var authz api.Authorizer
	if auth {
		authz = api.NewKeyAuth(apps, api.KeyAuthConfig{AdminToken: adminToken})
	}
	b := &subsBundle{bundle: &bundle{mr: mr, rdb: store.Client(), store: store, sched: sched, clock: clock, reg: reg,
		handler: a.Engine(authz)}, creds: map[string]tenant.Credentials{}}
	if auth {
		for _, name := range []string{"shop", "billing"} {
			_, cr, err := apps.Create(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			b.creds[name] = cr
		}
	}
	return b
}

func (b *subsBundle) key(app string) []string { return bearer(b.creds[app].APIKey) }

func subBody(app, id, topicName string) map[string]any {
	return map[string]any{"app": app, "id": id, "topic": topicName, "url": "https://example.com/" + id}
}

func TestSubscriptionCreate(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	now := fmtMillis(b.clock.Now())
	full := map[string]any{"app": "shop", "id": "s1", "topic": "orders", "url": "https://example.com/hook",
		"method": "put", "headers": map[string]string{"X-Team": "a"}, "filter": `data["body"]["x"] == 1`,
		"rollback_url": "https://example.com/undo", "active": false, "max_attempts": 3, "timeout": "10s",
		"min_backoff": 2000, "max_backoff": "1m", "flow_key": "tenant:1", "callback_url": "https://example.com/cb",
		"failure_callback_url": "https://example.com/fail"}
	r := b.do(t, http.MethodPost, "/v1/subscriptions", full)
	wantStatus(t, r, http.StatusCreated)
	want := `{"app":"shop","id":"s1","topic":"orders","url":"https://example.com/hook","method":"PUT",
		"headers":{"X-Team":"a"},"filter":"data[\"body\"][\"x\"] == 1","rollback_url":"https://example.com/undo",
		"active":false,"max_attempts":3,"timeout":"10s","min_backoff":"2s","max_backoff":"1m0s","flow_key":"tenant:1",
		"callback_url":"https://example.com/cb","failure_callback_url":"https://example.com/fail",
		"created_at":"` + now + `","updated_at":"` + now + `"}`
	wantJSON(t, r, want)

	// An identical replay (later): 200 with the stored one.
	b.clock.Advance(time.Minute)
	r = b.do(t, http.MethodPost, "/v1/subscriptions", full)
	wantStatus(t, r, http.StatusOK)
	wantJSON(t, r, want)

	// The same id with different content: 409.
	full["url"] = "https://example.com/other"
	wantError(t, b.do(t, http.MethodPost, "/v1/subscriptions", full), http.StatusConflict, "-")

	// Defaults: method POST, active, no optional fields, id generated.
	r = b.do(t, http.MethodPost, "/v1/subscriptions", map[string]any{"app": "shop", "topic": "orders", "url": "https://example.com/x"})
	wantStatus(t, r, http.StatusCreated)
	m := obj(t, r)
	if m["method"] != "POST" || m["active"] != true || m["max_attempts"] != float64(scheduler.DefaultMaxAttempts) {
		t.Errorf("defaults: %s", r)
	}
	if id, _ := m["id"].(string); !topic.ValidSubscriptionID(id) {
		t.Errorf("generated id %q", id)
	}
	for _, k := range []string{"filter", "rollback_url", "timeout", "flow_key", "callback_url", "failure_callback_url"} {
		if _, ok := m[k]; ok {
			t.Errorf("unset %s is shown: %s", k, r)
		}
	}
	if h, ok := m["headers"].(map[string]any); !ok || len(h) != 0 {
		t.Errorf("headers = %v, want {}", m["headers"])
	}
}

func TestSubscriptionInvalid(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	with := func(k string, v any) map[string]any {
		m := subBody("shop", "s1", "orders")
		m[k] = v
		return m
	}
	tests := []struct {
		field string
		body  any
	}{
		{"filter", with("filter", `data["x"] ==)`)},
		{"app", with("app", "bad app")},
		{"id", with("id", "bad/id")},
		{"topic", with("topic", "")},
		{"topic", with("topic", strings.Repeat("t", 129))},
		{"url", with("url", "ftp://example.com")},
		{"url", with("url", "http://127.0.0.1/hook")}, // the create-time guard
		{"method", with("method", "TRACE")},
		{"headers", with("headers", map[string]string{"Host": "x"})},
		{"headers", with("headers", []string{"X: y"})},
		{"rollback_url", with("rollback_url", "nope")},
		{"callback_url", with("callback_url", "http://10.1.2.3/cb")},
		{"failure_callback_url", with("failure_callback_url", "ftp://x")},
		{"active", with("active", "yes")},
		{"max_attempts", with("max_attempts", 0)},
		{"max_attempts", with("max_attempts", scheduler.MaxMaxAttempts+1)},
		{"timeout", with("timeout", "forever")},
		{"timeout", with("timeout", "1h")},
		{"min_backoff", with("min_backoff", "-1s")},
		{"max_backoff", with("max_backoff", "48h")},
		{"flow_key", with("flow_key", "a b")},
		{"", `{"app":`},
		{"", `[1]`},
	}
	for _, tt := range tests {
		field := tt.field
		if field == "" {
			field = "-"
		}
		e := wantError(t, b.do(t, http.MethodPost, "/v1/subscriptions", tt.body), http.StatusBadRequest, field)
		if tt.field == "filter" && !strings.Contains(e["message"].(string), "unexpected token") {
			t.Errorf("filter error message %q is not the parser's", e["message"])
		}
	}
	// Nothing was stored.
	wantStatus(t, b.do(t, http.MethodGet, "/v1/subscriptions/shop/s1", nil), http.StatusNotFound)
}

func TestSubscriptionPutGetDelete(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	created := fmtMillis(b.clock.Now())
	body := subBody("", "", "orders")
	delete(body, "app")
	delete(body, "id")
	r := b.do(t, http.MethodPut, "/v1/subscriptions/shop/s1", body)
	wantStatus(t, r, http.StatusOK)
	if m := obj(t, r); m["app"] != "shop" || m["id"] != "s1" || m["created_at"] != created {
		t.Fatalf("PUT created: %s", r)
	}

	b.clock.Advance(time.Minute)
	body["topic"] = "carts"
	body["app"], body["id"] = "shop", "s1" // repeating the path is fine
	r = b.do(t, http.MethodPut, "/v1/subscriptions/shop/s1", body)
	wantStatus(t, r, http.StatusOK)
	m := obj(t, r)
	if m["topic"] != "carts" || m["created_at"] != created || m["updated_at"] != fmtMillis(b.clock.Now()) {
		t.Fatalf("PUT replaced: %s", r)
	}

	wantError(t, b.do(t, http.MethodPut, "/v1/subscriptions/shop/s1", subBody("billing", "s1", "x")), http.StatusBadRequest, "app")
	wantError(t, b.do(t, http.MethodPut, "/v1/subscriptions/shop/s1", subBody("shop", "s2", "x")), http.StatusBadRequest, "id")
	wantError(t, b.do(t, http.MethodPut, "/v1/subscriptions/shop/s1", with(subBody("shop", "s1", "x"), "filter", "a ==)")),
		http.StatusBadRequest, "filter")
	wantError(t, b.do(t, http.MethodPut, "/v1/subscriptions/shop/bad:id", subBody("", "", "x")), http.StatusBadRequest, "id")

	r = b.do(t, http.MethodGet, "/v1/subscriptions/shop/s1", nil)
	wantStatus(t, r, http.StatusOK)
	if m := obj(t, r); m["topic"] != "carts" {
		t.Fatalf("GET: %s", r)
	}
	e := wantError(t, b.do(t, http.MethodGet, "/v1/subscriptions/shop/nope", nil), http.StatusNotFound, "-")
	if e["message"] != "subscription not found" {
		t.Errorf("404 message %q", e["message"])
	}
	r = b.do(t, http.MethodDelete, "/v1/subscriptions/shop/s1", nil)
	wantStatus(t, r, http.StatusOK)
	if m := obj(t, r); m["id"] != "s1" || m["topic"] != "carts" {
		t.Fatalf("DELETE: %s", r)
	}
	wantError(t, b.do(t, http.MethodDelete, "/v1/subscriptions/shop/s1", nil), http.StatusNotFound, "-")
	wantError(t, b.do(t, http.MethodGet, "/v1/subscriptions/shop/s1", nil), http.StatusNotFound, "-")
}

func with(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

func TestSubscriptionList(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	for _, s := range []struct{ app, id, topic string }{
		{"shop", "b", "orders"}, {"shop", "a", "orders"}, {"shop", "c", "carts"}, {"billing", "z", "orders"},
	} {
		wantStatus(t, b.do(t, http.MethodPost, "/v1/subscriptions", subBody(s.app, s.id, s.topic)), http.StatusCreated)
	}
	// list pages through a listing, returning app/id in order.
	list := func(query string) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 10 {
			path := "/v1/subscriptions?" + query
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := b.do(t, http.MethodGet, path, nil)
			wantStatus(t, r, http.StatusOK)
			m := obj(t, r)
			next, present := m["next_cursor"]
			if !present {
				t.Fatalf("next_cursor missing: %s", r)
			}
			for _, s := range m["subscriptions"].([]any) {
				sv := s.(map[string]any)
				out = append(out, sv["app"].(string)+"/"+sv["id"].(string))
			}
			if next == nil {
				return out
			}
			cursor = next.(string)
		}
		t.Fatal("listing does not end")
		return nil
	}
	if got := fmt.Sprint(list("limit=1")); got != "[billing/z shop/c shop/a shop/b]" {
		t.Errorf("every subscription, by (app, topic, id): %s", got)
	}
	if got := fmt.Sprint(list("app=shop&limit=2")); got != "[shop/c shop/a shop/b]" {
		t.Errorf("app=shop: %s", got)
	}
	if got := fmt.Sprint(list("topic=orders&limit=2")); got != "[billing/z shop/a shop/b]" {
		t.Errorf("topic=orders: %s", got)
	}
	if got := fmt.Sprint(list("app=shop&topic=orders")); got != "[shop/a shop/b]" {
		t.Errorf("app=shop&topic=orders: %s", got)
	}
	r := b.do(t, http.MethodGet, "/v1/subscriptions?app=nobody", nil)
	wantJSON(t, r, `{"subscriptions":[],"next_cursor":null}`)
	for _, q := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=501", "limit"}, {"limit=x", "limit"}, {"cursor=zzz", "cursor"},
		{"topic=a%20b", "topic"}, {"app=a%2Fb", "app"},
	} {
		wantError(t, b.do(t, http.MethodGet, "/v1/subscriptions?"+q.query, nil), http.StatusBadRequest, q.field)
	}
}

// TestSubscriptionTenancy runs shop's key against billing's subscriptions on
// every route: 403, nothing changes; shop's own go through.
func TestSubscriptionTenancy(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, true)
	admin := bearer(adminToken)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/subscriptions", subBody("billing", "b1", "orders"), admin...), http.StatusCreated)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/subscriptions", subBody("shop", "s1", "orders"), b.key("shop")...), http.StatusCreated)
	// The key's application is filled in when the body leaves it out.
	noApp := subBody("", "s2", "orders")
	delete(noApp, "app")
	r := b.do(t, http.MethodPost, "/v1/subscriptions", noApp, b.key("shop")...)
	wantStatus(t, r, http.StatusCreated)
	if obj(t, r)["app"] != "shop" {
		t.Errorf("app filled in from the key: %s", r)
	}

	shop := b.key("shop")
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/v1/subscriptions", subBody("billing", "x", "orders")},
		{http.MethodPut, "/v1/subscriptions/billing/b1", subBody("", "", "stolen")},
		{http.MethodGet, "/v1/subscriptions/billing/b1", nil},
		{http.MethodDelete, "/v1/subscriptions/billing/b1", nil},
		{http.MethodGet, "/v1/subscriptions?app=billing", nil},
	} {
		wantError(t, b.do(t, tt.method, tt.path, tt.body, shop...), http.StatusForbidden, "app")
	}
	// Nothing of billing's changed.
	r = b.do(t, http.MethodGet, "/v1/subscriptions/billing/b1", nil, admin...)
	wantStatus(t, r, http.StatusOK)
	if obj(t, r)["topic"] != "orders" {
		t.Errorf("billing's subscription changed: %s", r)
	}
	// shop's key lists shop's only; the admin lists everything.
	r = b.do(t, http.MethodGet, "/v1/subscriptions", nil, shop...)
	wantStatus(t, r, http.StatusOK)
	if n := len(obj(t, r)["subscriptions"].([]any)); n != 2 {
		t.Errorf("shop's key lists %d subscriptions, want its 2: %s", n, r)
	}
	r = b.do(t, http.MethodGet, "/v1/subscriptions", nil, admin...)
	if n := len(obj(t, r)["subscriptions"].([]any)); n != 3 {
		t.Errorf("the admin lists %d subscriptions, want 3: %s", n, r)
	}
	// No credential: 401.
	wantError(t, b.do(t, http.MethodGet, "/v1/subscriptions", nil), http.StatusUnauthorized, "")
	// shop's own, every route.
	wantStatus(t, b.do(t, http.MethodPut, "/v1/subscriptions/shop/s1", subBody("", "", "carts"), shop...), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/subscriptions/shop/s1", nil, shop...), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodDelete, "/v1/subscriptions/shop/s1", nil, shop...), http.StatusOK)
}

func TestSubscriptionCapAnswers409(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	// Fill shop's hash to the cap behind the API's back.
	vals := make([]any, 0, 2*topic.MaxSubscriptionsPerApp)
	for i := range topic.MaxSubscriptionsPerApp {
		vals = append(vals, fmt.Sprintf("s%d", i), `{"created":1,"app":"shop","id":"x","topic":"t","url":"https://example.com","active":true}`)
	}
	if err := b.rdb.HSet(context.Background(), "apitest:{apitest:sub:shop}:subs", vals...).Err(); err != nil {
		t.Fatal(err)
	}
	e := wantError(t, b.do(t, http.MethodPost, "/v1/subscriptions", subBody("shop", "one-more", "orders")), http.StatusConflict, "-")
	if e["code"] != "too_many_subscriptions" {
		t.Errorf("code = %v", e["code"])
	}
}

func TestSubscriptionRoutesNeedTheComponent(t *testing.T) {
	t.Parallel()
	b := setup(t) // no Config.Subscriptions
	wantStatus(t, b.do(t, http.MethodGet, "/v1/subscriptions", nil), http.StatusNotFound)
}
