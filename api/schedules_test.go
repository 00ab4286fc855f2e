package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

func schedBody(app, id string) map[string]any {
	return map[string]any{"app": app, "id": id, "every": "1h", "url": "https://example.com/" + id}
}

func TestScheduleCreate(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	now := b.clock.Now()
	full := map[string]any{"app": "shop", "id": "s1", "every": "90m", "start_at": fmtMillis(now.Add(time.Hour)),
		"end_at": fmtMillis(now.Add(48 * time.Hour)), "url": "https://example.com/hook", "method": "put",
		"headers": map[string]string{"X-Team": "a"}, "body": map[string]any{"report": "daily"}, "max_attempts": 3,
		"timeout": "10s", "min_backoff": 2000, "max_backoff": "1m", "callback_url": "https://example.com/cb",
		"failure_callback_url": "https://example.com/fail", "flow_key": "tenant:1"}
	r := b.do(t, http.MethodPost, "/v1/schedules", full)
	wantStatus(t, r, http.StatusCreated)
	first := fmtMillis(now.Add(time.Hour))
	wantJSON(t, r, `{"app":"shop","id":"s1","every":"90m","timezone":"UTC","start_at":"`+first+`",
		"end_at":"`+fmtMillis(now.Add(48*time.Hour))+`","paused":false,"url":"https://example.com/hook","method":"PUT",
		"headers":{"X-Team":"a"},"body":"{\"report\":\"daily\"}","max_attempts":3,"timeout":"10s","min_backoff":"2s",
		"max_backoff":"1m0s","callback_url":"https://example.com/cb","failure_callback_url":"https://example.com/fail",
		"flow_key":"tenant:1","next_at":"`+first+`","last_runs":[],"created_at":"`+fmtMillis(now)+`","updated_at":"`+fmtMillis(now)+`"}`)

	// The first occurrence is an ordinary event, due at next_at.
	ev, err := b.sched.Get(context.Background(), "shop", "s1@"+strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10))
	if err != nil {
		t.Fatalf("first occurrence: %v", err)
	}
	if ev.Status != scheduler.StatusPending || !ev.DueAt.Equal(now.Add(time.Hour)) || ev.Headers["Cassata-Schedule-Id"] != "s1" ||
		ev.Method != "PUT" || string(ev.Body) != `{"report":"daily"}` {
		t.Errorf("first occurrence %+v", ev)
	}

	// An identical create is a replay; a different one a conflict.
	wantStatus(t, b.do(t, http.MethodPost, "/v1/schedules", full), http.StatusOK)
	e := wantError(t, b.do(t, http.MethodPost, "/v1/schedules", with(full, "every", "2h")), http.StatusConflict, "-")
	if !strings.Contains(e["message"].(string), "schedule") {
		t.Errorf("409 message %q", e["message"])
	}

	// A cron in a time zone: the next 09:00 in Berlin.
	r = b.do(t, http.MethodPost, "/v1/schedules", map[string]any{"app": "shop", "id": "berlin", "cron": "0 9 * * *",
		"timezone": "Europe/Berlin", "url": "https://example.com/x"})
	wantStatus(t, r, http.StatusCreated)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	want := time.Date(now.In(berlin).Year(), now.In(berlin).Month(), now.In(berlin).Day(), 9, 0, 0, 0, berlin)
	if !want.After(now) {
		want = want.AddDate(0, 0, 1)
		want = time.Date(want.Year(), want.Month(), want.Day(), 9, 0, 0, 0, berlin)
	}
	if o := obj(t, r); o["next_at"] != fmtMillis(want) || o["timezone"] != "Europe/Berlin" || o["cron"] != "0 9 * * *" {
		t.Errorf("cron in Berlin: %s, want next_at %s", r, fmtMillis(want))
	}

	// Defaults: id generated, POST, UTC, first occurrence one interval after the create.
	r = b.do(t, http.MethodPost, "/v1/schedules", map[string]any{"app": "shop", "every": "30s", "url": "https://example.com/x"})
	wantStatus(t, r, http.StatusCreated)
	o := obj(t, r)
	if id, _ := o["id"].(string); len(id) != 32 || o["method"] != "POST" || o["timezone"] != "UTC" ||
		o["next_at"] != fmtMillis(now.Add(30*time.Second)) || o["start_at"] != nil || o["body"] != nil {
		t.Errorf("defaults: %s", r)
	}
}

func TestScheduleInvalid(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	for _, tt := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"neither cron nor every", map[string]any{"app": "shop", "url": "https://example.com/x"}, "cron"},
		{"cron and every", with(schedBody("shop", "s"), "cron", "* * * * *"), "cron"},
		{"cron invalid", with(with(schedBody("shop", "s"), "every", nil), "cron", "61 * * * *"), "cron"},
		{"cron with seconds", with(with(schedBody("shop", "s"), "every", nil), "cron", "0 * * * * *"), "cron"},
		{"cron @every", with(with(schedBody("shop", "s"), "every", nil), "cron", "@every 5m"), "cron"},
		{"every too short", with(schedBody("shop", "s"), "every", "500ms"), "every"},
		{"every not a duration", with(schedBody("shop", "s"), "every", "often"), "every"},
		{"every a number", with(schedBody("shop", "s"), "every", 60), "every"},
		{"timezone unknown", with(schedBody("shop", "s"), "timezone", "Mars/Olympus"), "timezone"},
		{"start_at", with(schedBody("shop", "s"), "start_at", "tomorrow"), "start_at"},
		{"end before start", with(with(schedBody("shop", "s"), "start_at", "2030-01-02T00:00:00Z"), "end_at", "2030-01-01T00:00:00Z"), "end_at"},
		{"url", with(schedBody("shop", "s"), "url", "ftp://example.com"), "url"},
		{"method", with(schedBody("shop", "s"), "method", "BREW"), "method"},
		{"app", schedBody("bad app", "s"), "app"},
		{"id", schedBody("shop", "bad/id"), "id"},
		{"max_attempts", with(schedBody("shop", "s"), "max_attempts", 0), "max_attempts"},
		{"flow_key", with(schedBody("shop", "s"), "flow_key", "a b"), "flow_key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, b.do(t, http.MethodPost, "/v1/schedules", tt.body), http.StatusBadRequest, tt.field)
		})
	}
}

func TestScheduleLifecycle(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	ctx := context.Background()
	now := b.clock.Now()
	wantStatus(t, b.do(t, http.MethodPost, "/v1/schedules", schedBody("shop", "s1")), http.StatusCreated)
	head := "s1@" + strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)

	// PUT with another interval: the next occurrence follows it, the old one is cancelled.
	r := b.do(t, http.MethodPut, "/v1/schedules/shop/s1", map[string]any{"every": "10m", "url": "https://example.com/new"})
	wantStatus(t, r, http.StatusOK)
	if o := obj(t, r); o["next_at"] != fmtMillis(now.Add(10*time.Minute)) || o["created_at"] != fmtMillis(now) {
		t.Errorf("after PUT: %s", r)
	}
	if ev, _ := b.sched.Get(ctx, "shop", head); ev == nil || ev.Status != scheduler.StatusCancelled {
		t.Errorf("the old pending occurrence is %+v, want CANCELLED", ev)
	}
	head = "s1@" + strconv.FormatInt(now.Add(10*time.Minute).UnixMilli(), 10)
	if ev, _ := b.sched.Get(ctx, "shop", head); ev == nil || ev.Status != scheduler.StatusPending || ev.URL != "https://example.com/new" {
		t.Errorf("the new pending occurrence is %+v", ev)
	}
	wantError(t, b.do(t, http.MethodPut, "/v1/schedules/shop/s1", schedBody("billing", "s1")), http.StatusBadRequest, "app")
	wantError(t, b.do(t, http.MethodPut, "/v1/schedules/shop/s1", schedBody("shop", "s2")), http.StatusBadRequest, "id")

	// Pause: no next occurrence, the pending one cancelled; resume from the next future one.
	r = b.do(t, http.MethodPost, "/v1/schedules/shop/s1/pause", nil)
	wantStatus(t, r, http.StatusOK)
	if o := obj(t, r); o["paused"] != true || o["next_at"] != nil {
		t.Errorf("paused: %s", r)
	}
	if ev, _ := b.sched.Get(ctx, "shop", head); ev == nil || ev.Status != scheduler.StatusCancelled {
		t.Errorf("after pause the pending occurrence is %+v, want CANCELLED", ev)
	}
	b.clock.Advance(25 * time.Minute)
	r = b.do(t, http.MethodPost, "/v1/schedules/shop/s1/resume", nil)
	wantStatus(t, r, http.StatusOK)
	if o := obj(t, r); o["paused"] != false || o["next_at"] != fmtMillis(now.Add(30*time.Minute)) {
		t.Errorf("resumed at +25m: %s, want next_at at +30m", r)
	}

	// Trigger: one more occurrence now, next_at unchanged, in last_runs.
	r = b.do(t, http.MethodPost, "/v1/schedules/shop/s1/trigger", nil)
	wantStatus(t, r, http.StatusOK)
	o := obj(t, r)
	runs, _ := o["last_runs"].([]any)
	if o["next_at"] != fmtMillis(now.Add(30*time.Minute)) || len(runs) != 1 {
		t.Fatalf("triggered: %s", r)
	}
	run := runs[0].(map[string]any)
	if run["event_id"] != "s1@"+strconv.FormatInt(now.Add(25*time.Minute).UnixMilli(), 10) || run["status"] != "PENDING" ||
		run["due_at"] != fmtMillis(now.Add(25*time.Minute)) {
		t.Errorf("triggered run %v", run)
	}

	// List, then delete: the pending occurrence is cancelled.
	wantStatus(t, b.do(t, http.MethodPost, "/v1/schedules", schedBody("shop", "s2")), http.StatusCreated)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/schedules", schedBody("billing", "b1")), http.StatusCreated)
	r = b.do(t, http.MethodGet, "/v1/schedules?limit=2", nil)
	wantStatus(t, r, http.StatusOK)
	o = obj(t, r)
	list, _ := o["schedules"].([]any)
	cursor, _ := o["next_cursor"].(string)
	if len(list) != 2 || list[0].(map[string]any)["id"] != "b1" || list[1].(map[string]any)["id"] != "s1" || cursor == "" {
		t.Fatalf("first page: %s", r)
	}
	r = b.do(t, http.MethodGet, "/v1/schedules?limit=2&cursor="+cursor, nil)
	if o := obj(t, r); len(o["schedules"].([]any)) != 1 || o["next_cursor"] != nil {
		t.Errorf("second page: %s", r)
	}
	if o := obj(t, b.do(t, http.MethodGet, "/v1/schedules?app=shop", nil)); len(o["schedules"].([]any)) != 2 {
		t.Errorf("shop's schedules: %v", o)
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/schedules?cursor=nope", nil), http.StatusBadRequest, "cursor")
	wantError(t, b.do(t, http.MethodGet, "/v1/schedules?limit=0", nil), http.StatusBadRequest, "limit")

	wantStatus(t, b.do(t, http.MethodDelete, "/v1/schedules/shop/s1", nil), http.StatusOK)
	if ev, _ := b.sched.Get(ctx, "shop", "s1@"+strconv.FormatInt(now.Add(30*time.Minute).UnixMilli(), 10)); ev == nil || ev.Status != scheduler.StatusCancelled {
		t.Errorf("after delete the pending occurrence is %+v, want CANCELLED", ev)
	}
	e := wantError(t, b.do(t, http.MethodGet, "/v1/schedules/shop/s1", nil), http.StatusNotFound, "-")
	if e["message"] != "schedule not found" {
		t.Errorf("404 message %q", e["message"])
	}
	for _, path := range []string{"/v1/schedules/shop/s1/pause", "/v1/schedules/shop/s1/resume", "/v1/schedules/shop/s1/trigger"} {
		wantError(t, b.do(t, http.MethodPost, path, nil), http.StatusNotFound, "-")
	}
	wantError(t, b.do(t, http.MethodDelete, "/v1/schedules/shop/s1", nil), http.StatusNotFound, "-")
}

func TestScheduleTenancy(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, true)
	admin := bearer(adminToken)
	shop := b.key("shop")
	wantStatus(t, b.do(t, http.MethodPost, "/v1/schedules", schedBody("billing", "b1"), admin...), http.StatusCreated)
	noApp := schedBody("", "s1")
	delete(noApp, "app")
	r := b.do(t, http.MethodPost, "/v1/schedules", noApp, shop...)
	wantStatus(t, r, http.StatusCreated)
	if obj(t, r)["app"] != "shop" {
		t.Errorf("app filled in from the key: %s", r)
	}
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/v1/schedules", schedBody("billing", "x")},
		{http.MethodPut, "/v1/schedules/billing/b1", schedBody("", "")},
		{http.MethodGet, "/v1/schedules/billing/b1", nil},
		{http.MethodDelete, "/v1/schedules/billing/b1", nil},
		{http.MethodPost, "/v1/schedules/billing/b1/pause", nil},
		{http.MethodPost, "/v1/schedules/billing/b1/resume", nil},
		{http.MethodPost, "/v1/schedules/billing/b1/trigger", nil},
		{http.MethodGet, "/v1/schedules?app=billing", nil},
	} {
		wantError(t, b.do(t, tt.method, tt.path, tt.body, shop...), http.StatusForbidden, "app")
	}
	r = b.do(t, http.MethodGet, "/v1/schedules", nil, shop...)
	if n := len(obj(t, r)["schedules"].([]any)); n != 1 {
		t.Errorf("shop's key lists %d schedules, want its 1: %s", n, r)
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/schedules", nil), http.StatusUnauthorized, "")
}
