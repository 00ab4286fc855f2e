package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler/topic"
)

func TestPublishMessage(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	now := b.clock.Now()
	msg := map[string]any{"app": "shop", "topic": "orders", "id": "m1", "body": map[string]any{"x": 1},
		"headers": map[string]string{"X-Trace": "t"}, "delay": "1m"}
	r := b.do(t, http.MethodPost, "/v1/messages", msg)
	wantStatus(t, r, http.StatusCreated)
	due := fmtMillis(now.Add(time.Minute))
	want := `{"app":"shop","id":"m1","topic":"orders","mode":"independent","status":"PENDING","due_at":"` + due +
		`","created_at":"` + fmtMillis(now) + `","updated_at":"` + fmtMillis(now) + `","deliveries":[],"rollbacks":[],"filter_errors":[]}`
	wantJSON(t, r, want)

	// An identical replay, later (the delay counts from the replay): 200 with the stored one.
	b.clock.Advance(time.Second)
	r = b.do(t, http.MethodPost, "/v1/messages", msg)
	wantStatus(t, r, http.StatusOK)
	wantJSON(t, r, want)

	// The same id with different content: 409.
	msg["body"] = map[string]any{"x": 2}
	wantError(t, b.do(t, http.MethodPost, "/v1/messages", msg), http.StatusConflict, "-")
	msg["body"], msg["mode"] = map[string]any{"x": 1}, topic.ModeAllOrNothing
	wantError(t, b.do(t, http.MethodPost, "/v1/messages", msg), http.StatusConflict, "-")

	// GET shows it; an unknown one is 404. An event of the same id is not a message.
	r = b.do(t, http.MethodGet, "/v1/messages/shop/m1", nil)
	wantStatus(t, r, http.StatusOK)
	wantJSON(t, r, want)
	wantError(t, b.do(t, http.MethodGet, "/v1/messages/shop/nope", nil), http.StatusNotFound, "-")
	wantStatus(t, b.do(t, http.MethodPost, "/v1/events", map[string]any{"app": "shop", "id": "ev1",
		"url": "https://example.com/", "delay": "1m"}), http.StatusCreated)
	wantError(t, b.do(t, http.MethodGet, "/v1/messages/shop/ev1", nil), http.StatusNotFound, "-")

	// Defaults: an id is generated, due now, mode independent.
	r = b.do(t, http.MethodPost, "/v1/messages", map[string]any{"app": "shop", "topic": "orders"})
	wantStatus(t, r, http.StatusCreated)
	m := obj(t, r)
	if id, _ := m["id"].(string); id == "" || m["due_at"] != fmtMillis(b.clock.Now()) || m["mode"] != "independent" {
		t.Errorf("defaults: %s", r)
	}
}

func TestPublishInvalid(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	base := func() map[string]any { return map[string]any{"app": "shop", "topic": "orders"} }
	with := func(k string, v any) map[string]any { m := base(); m[k] = v; return m }
	for _, tc := range []struct {
		field string
		body  any
	}{
		{"app", with("app", "bad app")},
		{"topic", with("topic", "bad topic")},
		{"topic", with("topic", strings.Repeat("t", 129))},
		{"id", with("id", strings.Repeat("i", 64))},
		{"id", with("id", "a/b")},
		{"mode", with("mode", "sometimes")},
		{"method", with("method", "BREW")},
		{"headers", with("headers", map[string]string{"Bad Name": "x"})},
		{"headers", with("headers", map[string]string{"Webhook-Signature": "forged"})},
		{"at", with("at", "tomorrow")},
		{"delay", with("delay", "-1s")},
	} {
		wantError(t, b.do(t, http.MethodPost, "/v1/messages", tc.body), http.StatusBadRequest, tc.field)
	}
	two := base()
	two["at"], two["delay"] = "2030-01-01T00:00:00Z", "1s"
	wantError(t, b.do(t, http.MethodPost, "/v1/messages", two), http.StatusBadRequest, "at")
	wantError(t, b.do(t, http.MethodPost, "/v1/messages", `{"app":`), http.StatusBadRequest, "-")
	// Nothing was stored.
	r := b.do(t, http.MethodGet, "/v1/messages?app=shop", nil)
	wantJSON(t, r, `{"messages":[],"next_cursor":null}`)
}

func TestCancelMessage(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/messages", map[string]any{"app": "shop", "topic": "orders",
		"id": "later", "delay": "1h"}), http.StatusCreated)
	r := b.do(t, http.MethodDelete, "/v1/messages/shop/later", nil)
	wantStatus(t, r, http.StatusOK)
	if m := obj(t, r); m["status"] != "CANCELLED" {
		t.Fatalf("cancel: %s", r)
	}
	wantError(t, b.do(t, http.MethodDelete, "/v1/messages/shop/later", nil), http.StatusConflict, "-")
	wantError(t, b.do(t, http.MethodDelete, "/v1/messages/shop/nope", nil), http.StatusNotFound, "-")
	if m := obj(t, b.do(t, http.MethodGet, "/v1/messages/shop/later", nil)); m["status"] != "CANCELLED" {
		t.Errorf("after cancel: %v", m)
	}
}

func TestListMessages(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	for i, p := range []struct{ app, topic, id string }{
		{"shop", "orders", "o1"}, {"shop", "orders", "o2"}, {"shop", "refunds", "r1"}, {"billing", "orders", "b1"}, {"shop", "orders", "o3"},
	} {
		b.clock.Advance(time.Millisecond * time.Duration(i+1))
		wantStatus(t, b.do(t, http.MethodPost, "/v1/messages", map[string]any{"app": p.app, "topic": p.topic, "id": p.id,
			"delay": "1h"}), http.StatusCreated)
	}
	wantStatus(t, b.do(t, http.MethodDelete, "/v1/messages/shop/o2", nil), http.StatusOK)
	ids := func(path string) (out []string, next any) {
		m := obj(t, b.do(t, http.MethodGet, path, nil))
		for _, x := range m["messages"].([]any) {
			out = append(out, x.(map[string]any)["id"].(string))
		}
		return out, m["next_cursor"]
	}
	check := func(path, want string) {
		t.Helper()
		got, _ := ids(path)
		if strings.Join(got, ",") != want {
			t.Errorf("%s: %v, want %s", path, got, want)
		}
	}
	check("/v1/messages?app=shop", "o3,r1,o2,o1") // newest first
	check("/v1/messages?app=shop&topic=orders", "o3,o2,o1")
	check("/v1/messages?app=shop&status=CANCELLED", "o2")
	check("/v1/messages?app=shop&topic=orders&status=PENDING", "o3,o1")
	check("/v1/messages", "b1,o3,r1,o2,o1") // every application, by application
	// Pages.
	page, next := ids("/v1/messages?app=shop&limit=2")
	if strings.Join(page, ",") != "o3,r1" || next == nil {
		t.Fatalf("page 1: %v next %v", page, next)
	}
	page, next = ids("/v1/messages?app=shop&limit=2&cursor=" + next.(string))
	if strings.Join(page, ",") != "o2,o1" {
		t.Fatalf("page 2: %v next %v", page, next)
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/messages?status=LOST", nil), http.StatusBadRequest, "status")
	wantError(t, b.do(t, http.MethodGet, "/v1/messages?limit=0", nil), http.StatusBadRequest, "limit")
	wantError(t, b.do(t, http.MethodGet, "/v1/messages?limit=501", nil), http.StatusBadRequest, "limit")
}

// TestMessagesTenancy: an application's key publishes to and reads only its
// own application's messages.
func TestMessagesTenancy(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, true)
	r := b.do(t, http.MethodPost, "/v1/messages", map[string]any{"topic": "orders", "id": "m", "delay": "1h"}, b.key("shop")...)
	wantStatus(t, r, http.StatusCreated)
	if m := obj(t, r); m["app"] != "shop" {
		t.Fatalf("the key's application fills in app: %s", r)
	}
	wantError(t, b.do(t, http.MethodPost, "/v1/messages", map[string]any{"app": "shop", "topic": "orders"}, b.key("billing")...),
		http.StatusForbidden, "app")
	wantError(t, b.do(t, http.MethodGet, "/v1/messages/shop/m", nil, b.key("billing")...), http.StatusForbidden, "app")
	wantError(t, b.do(t, http.MethodDelete, "/v1/messages/shop/m", nil, b.key("billing")...), http.StatusForbidden, "app")
	wantStatus(t, b.do(t, http.MethodGet, "/v1/messages/shop/m", nil, b.key("shop")...), http.StatusOK)
	m := obj(t, b.do(t, http.MethodGet, "/v1/messages", nil, b.key("billing")...))
	if n := len(m["messages"].([]any)); n != 0 {
		t.Errorf("billing lists %d messages of shop", n)
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/messages", nil), http.StatusUnauthorized, "-")
	wantStatus(t, b.do(t, http.MethodGet, "/v1/messages?app=shop", nil, bearer(adminToken)...), http.StatusOK)
}
