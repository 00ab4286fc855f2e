package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// topicsEnv is a logged-in UI with Topics over fakes.
type topicsEnv struct {
	*testEnv
	store *fakeSubStore
	msgs  *fakeMessages
}

func setupTopics(t *testing.T) *topicsEnv {
	t.Helper()
	te := &topicsEnv{}
	te.testEnv = setup(t, withTopics(&te.store, &te.msgs))
	te.login()
	return te
}

// sub stores a subscription as the API would create it.
func (te *topicsEnv) sub(s topic.Subscription) {
	te.t.Helper()
	if s.URL == "" {
		s.URL = "https://example.com/" + s.ID
	}
	if s.Method == "" {
		s.Method = http.MethodPost
	}
	if _, _, err := te.ui.cfg.Topics.Subscriptions.Create(context.Background(), &s); err != nil {
		te.t.Fatalf("create subscription %s: %v", s.ID, err)
	}
}

func TestTopicsNotEnabled(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	r := e.get("/admin/topics")
	wantStatus(t, r, http.StatusOK)
	if got := text(byID(t, r.doc, "topics-disabled")); !strings.Contains(got, "not enabled") {
		t.Errorf("note %q", got)
	}
	if l := links(r.doc, "Topics"); len(l) != 1 || l[0] != "/admin/topics" {
		t.Errorf("Topics nav links %v", l)
	}
	if r := e.get("/admin/topics/shop/orders"); r.StatusCode != http.StatusNotFound {
		t.Errorf("a topic page without Topics: %d, want 404", r.StatusCode)
	}
}

func TestTopicsPage(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "a", Topic: "orders", Active: true})
	te.sub(topic.Subscription{App: "shop", ID: "b", Topic: "orders", Active: false})
	te.sub(topic.Subscription{App: "shop", ID: "c", Topic: "refunds", Active: true})
	te.sub(topic.Subscription{App: "blog", ID: "d", Topic: "posts", Active: true})

	r := te.get("/admin/topics")
	wantStatus(t, r, http.StatusOK)
	want := [][]string{{"blog", "posts", "1", "1"}, {"shop", "orders", "2", "1"}, {"shop", "refunds", "1", "1"}}
	if got := tableRows(t, r.doc, "topics"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("topics %q, want %q", got, want)
	}
	if got := tableHeader(t, r.doc, "topics"); fmt.Sprint(got) != "[Application Topic Subscriptions Active]" {
		t.Errorf("columns %q", got)
	}
	if l := links(r.doc, "orders"); len(l) != 1 || l[0] != "/admin/topics/shop/orders" {
		t.Errorf("orders links %v", l)
	}
	nav := findAll(r.doc, tag("nav"))[0]
	var cur []string
	for _, a := range findAll(nav, tag("a")) {
		if v, _ := attr(a, "aria-current"); v == "page" {
			cur = append(cur, text(a))
		}
	}
	if fmt.Sprint(cur) != "[Topics]" {
		t.Errorf("current nav link %v", cur)
	}

	// Filtered by application.
	r = te.get("/admin/topics?app=shop")
	if got := tableRows(t, r.doc, "topics"); len(got) != 2 || got[0][0] != "shop" {
		t.Errorf("topics of shop %q", got)
	}
	r = te.get("/admin/topics?app=" + url.QueryEscape("bad app"))
	wantStatus(t, r, http.StatusBadRequest)
	if got := flashText(t, r.doc); !strings.Contains(got, "app") {
		t.Errorf("flash %q", got)
	}

	// "Open a topic" goes to its page, subscriptions or not.
	r = te.get("/admin/topics?app=shop&topic=new-topic")
	wantRedirect(t, r, http.StatusFound, "/admin/topics/shop/new-topic")
	r = te.get("/admin/topics/shop/new-topic")
	wantStatus(t, r, http.StatusOK)
	if !hasID(r.doc, "no-subscriptions") {
		t.Error("an empty topic does not say it has no subscriptions")
	}
	r = te.get("/admin/topics?topic=x")
	if got := flashText(t, r.doc); !strings.Contains(got, "application") {
		t.Errorf("opening a topic without its application: flash %q", got)
	}

	// Storage trouble is a 503 page, as elsewhere.
	te.store.err = fmt.Errorf("redis: %w", scheduler.ErrUnavailable)
	if r := te.get("/admin/topics"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Redis down: %d", r.StatusCode)
	}
}

func TestTopicsPagePagesThroughSubscriptions(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	n := topic.MaxListLimit + 3
	for i := range n {
		te.sub(topic.Subscription{App: "shop", ID: fmt.Sprintf("s%04d", i), Topic: "orders", Active: i%2 == 0})
	}
	r := te.get("/admin/topics")
	want := [][]string{{"shop", "orders", fmt.Sprint(n), fmt.Sprint((n + 1) / 2)}}
	if got := tableRows(t, r.doc, "topics"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("topics %q, want %q", got, want)
	}
}

func TestTopicPage(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "billing", Topic: "orders", URL: "https://billing.example/hook", Active: true,
		Filter: `data["body"]["total"] > 10`, RollbackURL: "https://billing.example/undo", MaxAttempts: 3,
		Headers: map[string]string{"X-Team": "billing"}, Timeout: 5 * time.Second})
	te.sub(topic.Subscription{App: "shop", ID: "audit", Topic: "orders", URL: "https://audit.example/", Method: "PUT", Active: false})
	te.sub(topic.Subscription{App: "shop", ID: "other", Topic: "refunds", Active: true})
	now := te.clock.Now()
	te.msgs.add(&topic.Message{App: "shop", ID: "m-1", Topic: "orders", Status: topic.MessageCompleted, CreatedAt: now.Add(-time.Minute),
		Deliveries: []topic.Delivery{
			{Subscription: "billing", EventID: "m-1~billing", Status: scheduler.StatusCompleted, Attempts: 1},
			{Subscription: "audit", EventID: "m-1~audit", Status: scheduler.StatusCompleted, Attempts: 2},
		}})
	te.msgs.add(&topic.Message{App: "shop", ID: "m-2", Topic: "orders", Status: topic.MessageRollingBack, Mode: topic.ModeAllOrNothing, CreatedAt: now,
		Deliveries: []topic.Delivery{
			{Subscription: "billing", EventID: "m-2~billing", Status: scheduler.StatusCompleted, Attempts: 1},
			{Subscription: "audit", EventID: "m-2~audit", Status: scheduler.StatusFailed, Attempts: 3},
		},
		Rollbacks: []topic.Delivery{{Subscription: "billing", EventID: "m-2!billing", Status: scheduler.StatusPending}}})
	te.msgs.add(&topic.Message{App: "shop", ID: "r-1", Topic: "refunds", CreatedAt: now})

	r := te.get("/admin/topics/shop/orders")
	wantStatus(t, r, http.StatusOK)
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "orders" {
		t.Errorf("heading %q", h)
	}
	if got := tableHeader(t, r.doc, "subscriptions"); fmt.Sprint(got) != "[ID URL Method Filter Rollback URL Active Policy Actions]" {
		t.Errorf("subscription columns %q", got)
	}
	rows := tableRows(t, r.doc, "subscriptions")
	want := [][]string{
		{"audit", "https://audit.example/", "PUT", "(none: every message)", "—", "inactive", "default", "Edit EnableDelete"},
		{"billing", "https://billing.example/hook HeadersX-Team: billing", "POST", `data["body"]["total"] > 10`, "https://billing.example/undo",
			"active", "max 3 attempts, timeout 5s", "Edit DisableDelete"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("subscriptions\n%q\nwant\n%q", rows, want)
	}
	if l := links(r.doc, "Edit"); fmt.Sprint(l) != "[/admin/topics/shop/orders/subscriptions/audit /admin/topics/shop/orders/subscriptions/billing]" {
		t.Errorf("edit links %v", l)
	}

	// Recent messages: this topic's only, newest first, 50 at most.
	msgs := tableRows(t, r.doc, "messages")
	if len(msgs) != 2 || msgs[0][0] != "m-2" || msgs[1][0] != "m-1" {
		t.Fatalf("messages %q", msgs)
	}
	if msgs[0][1] != "ROLLING_BACK" || msgs[0][2] != "all_or_nothing" || msgs[0][4] != "1 COMPLETED, 1 FAILED" || msgs[0][5] != "1 PENDING" {
		t.Errorf("m-2 row %q", msgs[0])
	}
	if msgs[1][4] != "2 COMPLETED" || msgs[1][5] != "none" {
		t.Errorf("m-1 row %q", msgs[1])
	}
	if l := links(r.doc, "m-2"); fmt.Sprint(l) != "[/admin/messages/shop/m-2]" {
		t.Errorf("message link %v", l)
	}
	last := te.msgs.lists[len(te.msgs.lists)-1]
	if last != (topic.MessageQuery{App: "shop", Topic: "orders", Limit: 50}) {
		t.Errorf("messages listed with %+v", last)
	}

	for _, path := range []string{"/admin/topics/" + url.PathEscape("bad app") + "/orders", "/admin/topics/shop/" + url.PathEscape("a b")} {
		if r := te.get(path); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.StatusCode)
		}
	}
}

func TestCreateSubscription(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	r := te.get("/admin/topics/shop/orders")
	form := formOf(t, r.doc, "Create subscription")
	if action, _ := attr(form, "action"); action != "/admin/topics/shop/orders/subscriptions" {
		t.Errorf("form action %q", action)
	}
	v := formValues(form)
	if v.Get("csrf") == "" || v.Get("method") != "POST" || v.Get("active") != "true" {
		t.Errorf("form defaults %v", v)
	}
	v.Set("id", "billing")
	v.Set("url", "https://billing.example/hook")
	v.Set("headers", "X-Team: billing\n\nAuthorization: Bearer x:y\n")
	v.Set("filter", `data["body"]["x"] == 1`)
	v.Set("rollback_url", "https://billing.example/undo")
	v.Set("max_attempts", "4")
	r = te.post("/admin/topics/shop/orders/subscriptions", v)
	wantRedirect(t, r, http.StatusSeeOther, "/admin/topics/shop/orders")
	got := te.store.get("shop", "billing")
	if got == nil {
		t.Fatal("not created")
	}
	if got.Topic != "orders" || got.URL != "https://billing.example/hook" || got.Method != "POST" || !got.Active ||
		got.Filter != `data["body"]["x"] == 1` || got.RollbackURL != "https://billing.example/undo" || got.MaxAttempts != 4 ||
		fmt.Sprint(got.Headers) != "map[Authorization:Bearer x:y X-Team:billing]" {
		t.Errorf("stored %+v", got)
	}
	r = te.get("/admin/topics/shop/orders")
	if got := flashText(t, r.doc); got != "Subscription billing created." {
		t.Errorf("flash %q", got)
	}
	// The same again is a replay, not an error.
	r = te.post("/admin/topics/shop/orders/subscriptions", v)
	wantStatus(t, r, http.StatusSeeOther)
	if got := flashText(t, te.get("/admin/topics/shop/orders").doc); !strings.Contains(got, "nothing changed") {
		t.Errorf("replay flash %q", got)
	}

	// Without an id, inactive: an id is generated.
	r = te.post("/admin/topics/shop/orders/subscriptions", url.Values{"url": {"https://x.example/"}, "method": {"put"}})
	wantStatus(t, r, http.StatusSeeOther)
	subs, _, _ := te.ui.cfg.Topics.Subscriptions.List(context.Background(), topic.ListQuery{App: "shop"})
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions", len(subs))
	}
	for _, s := range subs {
		if s.ID != "billing" && (s.Active || s.Method != "PUT" || len(s.ID) != 32) {
			t.Errorf("generated %+v", s)
		}
	}
}

func TestCreateSubscriptionInvalid(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "taken", Topic: "orders", Active: true})
	good := url.Values{"id": {"new-one"}, "url": {"https://ok.example/"}, "method": {"POST"}, "active": {"true"},
		"headers": {"X-A: 1"}, "filter": {`data["x"] == 1`}, "rollback_url": {""}, "max_attempts": {"2"}}
	cases := []struct {
		name, field, value string
		status             int
		msg                string // in the error text
	}{
		{"bad filter", "filter", `data["x"] ==`, http.StatusBadRequest, "filter: "},
		{"bad url", "url", "not a url", http.StatusBadRequest, "url"},
		{"bad rollback url", "rollback_url", "ftp://x", http.StatusBadRequest, "rollback_url"},
		{"bad id", "id", "has space", http.StatusBadRequest, "id: "},
		{"bad max attempts", "max_attempts", "zero", http.StatusBadRequest, "max_attempts: "},
		{"bad headers", "headers", "no colon here", http.StatusBadRequest, "headers: line 1"},
		{"id taken", "id", "taken", http.StatusConflict, "id: a different subscription"},
	}
	for _, tc := range cases {
		v := url.Values{}
		for k, vals := range good {
			v[k] = slices.Clone(vals)
		}
		v.Set(tc.field, tc.value)
		r := te.post("/admin/topics/shop/orders/subscriptions", v)
		wantStatus(t, r, tc.status)
		errText := text(byID(t, r.doc, "form-error"))
		if !strings.HasPrefix(errText, tc.field+": ") || !strings.Contains(errText, tc.msg) {
			t.Errorf("%s: error %q, want it to name %s and say %q", tc.name, errText, tc.field, tc.msg)
		}
		// The entered values are kept, and the field at fault is marked.
		form := byID(t, r.doc, "subscription-form")
		kept := formValues(form)
		for _, name := range []string{"id", "url", "method", "rollback_url", "max_attempts"} {
			if kept.Get(name) != v.Get(name) {
				t.Errorf("%s: field %s shows %q, want %q as entered", tc.name, name, kept.Get(name), v.Get(name))
			}
		}
		for _, ta := range findAll(form, tag("textarea")) {
			name, _ := attr(ta, "name")
			if got := text(ta); got != strings.TrimSpace(v.Get(name)) {
				t.Errorf("%s: textarea %s shows %q, want %q", tc.name, name, got, v.Get(name))
			}
		}
		marked := findAll(form, func(n *htmlNode) bool { a, _ := attr(n, "aria-invalid"); return a == "true" })
		if len(marked) != 1 {
			t.Errorf("%s: %d fields marked invalid", tc.name, len(marked))
		} else if name, _ := attr(marked[0], "name"); name != tc.field {
			t.Errorf("%s: marked %s, want %s", tc.name, name, tc.field)
		}
		if te.store.get("shop", "new-one") != nil {
			t.Fatalf("%s: created anyway", tc.name)
		}
		// The rest of the page is still there.
		if !hasID(r.doc, "subscriptions") || !hasID(r.doc, "tester") {
			t.Errorf("%s: the topic page is incomplete", tc.name)
		}
	}
}

func TestEditSubscription(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "billing", Topic: "orders", URL: "https://billing.example/", Active: true,
		Headers: map[string]string{"X-Team": "billing"}, Timeout: 7 * time.Second, FlowKey: "billing"})
	r := te.get("/admin/topics/shop/orders/subscriptions/billing")
	wantStatus(t, r, http.StatusOK)
	form := formOf(t, r.doc, "Save subscription")
	v := formValues(form)
	if v.Get("url") != "https://billing.example/" || v.Get("active") != "true" || v.Has("id") {
		t.Errorf("edit form values %v", v)
	}
	if got := text(byID(t, r.doc, "sub-headers")); got != "X-Team: billing" {
		t.Errorf("headers textarea %q", got)
	}
	checked := findAll(form, func(n *htmlNode) bool { _, ok := attr(n, "checked"); return ok })
	if len(checked) != 1 {
		t.Error("the Active box is not checked")
	}
	// A bad filter: shown on the edit page, nothing changed.
	v.Set("filter", "data[")
	v.Set("headers", "X-Team: billing")
	action, _ := attr(form, "action")
	r = te.post(action, v)
	wantStatus(t, r, http.StatusBadRequest)
	if got := text(byID(t, r.doc, "form-error")); !strings.HasPrefix(got, "filter: ") {
		t.Errorf("error %q", got)
	}
	if got := formValues(byID(t, r.doc, "subscription-form")).Get("url"); got != "https://billing.example/" {
		t.Errorf("url after a refusal %q", got)
	}
	if te.store.get("shop", "billing").Filter != "" {
		t.Fatal("a refused edit changed the subscription")
	}
	// A good edit: saved with Put; what the form does not show is kept.
	v.Set("filter", `data["kind"] == "big"`)
	v.Set("url", "https://billing.example/v2")
	v.Del("active")
	r = te.post(action, v)
	wantRedirect(t, r, http.StatusSeeOther, "/admin/topics/shop/orders")
	got := te.store.get("shop", "billing")
	if got.URL != "https://billing.example/v2" || got.Filter != `data["kind"] == "big"` || got.Active ||
		got.Timeout != 7*time.Second || got.FlowKey != "billing" || got.Headers["X-Team"] != "billing" {
		t.Errorf("saved %+v", got)
	}
	if got := flashText(t, te.get("/admin/topics/shop/orders").doc); got != "Subscription billing saved." {
		t.Errorf("flash %q", got)
	}
	// Another topic's path, or an unknown id: 404.
	for _, path := range []string{"/admin/topics/shop/refunds/subscriptions/billing", "/admin/topics/shop/orders/subscriptions/nope"} {
		if r := te.get(path); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.StatusCode)
		}
	}
}

func TestDisableEnableDeleteSubscription(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "billing", Topic: "orders", Active: true})
	page := "/admin/topics/shop/orders"

	form := formOf(t, te.get(page).doc, "Disable")
	action, _ := attr(form, "action")
	wantRedirect(t, te.post(action, formValues(form)), http.StatusSeeOther, page)
	if te.store.get("shop", "billing").Active {
		t.Fatal("still active after Disable")
	}
	r := te.get(page)
	if got := flashText(t, r.doc); !strings.Contains(got, "billing disabled") {
		t.Errorf("flash %q", got)
	}
	form = formOf(t, r.doc, "Enable")
	wantRedirect(t, te.post(action, formValues(form)), http.StatusSeeOther, page)
	if !te.store.get("shop", "billing").Active {
		t.Fatal("inactive after Enable")
	}

	// Delete asks first.
	form = formOf(t, te.get(page).doc, "Delete")
	action, _ = attr(form, "action")
	r = te.post(action, formValues(form))
	wantStatus(t, r, http.StatusOK)
	if h := text(byID(t, r.doc, "h-confirm")); h != "Delete subscription billing?" {
		t.Errorf("confirmation %q", h)
	}
	if te.store.get("shop", "billing") == nil {
		t.Fatal("deleted before confirming")
	}
	if l := links(r.doc, "Back"); fmt.Sprint(l) != "["+page+"]" {
		t.Errorf("Back links %v", l)
	}
	confirm := formOf(t, r.doc, "Confirm")
	wantRedirect(t, te.post(action, formValues(confirm)), http.StatusSeeOther, page)
	if te.store.get("shop", "billing") != nil {
		t.Fatal("not deleted")
	}
	r = te.get(page)
	if got := flashText(t, r.doc); got != "Subscription billing deleted." {
		t.Errorf("flash %q", got)
	}
	if hasID(r.doc, "subscriptions") {
		t.Error("the deleted subscription is still listed")
	}
	// Deleting it again: it is gone, so 404.
	if r := te.post(action, url.Values{"confirm": {"yes"}}); r.StatusCode != http.StatusNotFound {
		t.Errorf("second delete: %d", r.StatusCode)
	}
}

func TestTopicsCSRF(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "billing", Topic: "orders", Active: true})
	te.msgs.add(&topic.Message{App: "shop", ID: "m-1", Topic: "orders"})
	posts := []string{
		"/admin/topics/shop/orders/subscriptions",
		"/admin/topics/shop/orders/subscriptions/billing",
		"/admin/topics/shop/orders/subscriptions/billing/active",
		"/admin/topics/shop/orders/subscriptions/billing/delete",
		"/admin/topics/shop/orders/test",
		"/admin/messages/shop/m-1/cancel",
	}
	for _, path := range posts {
		form := url.Values{"csrf": {""}, "id": {"x"}, "url": {"https://x.example/"}, "confirm": {"yes"}}
		if r := te.post(path, form); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a token: %d, want 403", path, r.StatusCode)
		}
		if r := te.post(path, nil, "Origin", "https://evil.example"); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s from another origin: %d, want 403", path, r.StatusCode)
		}
	}
	if s := te.store.get("shop", "billing"); s == nil || !s.Active || s.URL != "https://example.com/billing" {
		t.Errorf("a refused POST changed the subscription: %+v", s)
	}
	if te.store.get("shop", "x") != nil {
		t.Error("a refused POST created a subscription")
	}
	if st := te.msgs.status("shop", "m-1"); st != topic.MessagePending {
		t.Errorf("a refused POST cancelled the message: %s", st)
	}
	// And every Topics page needs a login.
	anon := setup(t, withTopics(new(*fakeSubStore), new(*fakeMessages)))
	for _, path := range []string{"/admin/topics", "/admin/topics/shop/orders", "/admin/messages/shop/m-1"} {
		if r := anon.get(path); r.StatusCode != http.StatusFound {
			t.Errorf("%s without a session: %d, want a redirect to the login", path, r.StatusCode)
		}
	}
}

func TestFilterTester(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.sub(topic.Subscription{App: "shop", ID: "big", Topic: "orders", Active: true, Filter: `data["body"]["total"] > 100`})
	te.sub(topic.Subscription{App: "shop", ID: "small", Topic: "orders", Active: true, Filter: `data["body"]["total"] <= 100`})
	te.sub(topic.Subscription{App: "shop", ID: "everything", Topic: "orders", Active: true})
	te.sub(topic.Subscription{App: "shop", ID: "broken", Topic: "orders", Active: true, Filter: `data["body"]["name"] < 3`})
	te.sub(topic.Subscription{App: "shop", ID: "by-header", Topic: "orders", Active: true,
		Filter: `data["headers"]["X-Region"] == "eu" and data["http_method"] == "put"`})
	te.sub(topic.Subscription{App: "shop", ID: "sleeping", Topic: "orders", Active: false, Filter: `True`})
	te.sub(topic.Subscription{App: "shop", ID: "elsewhere", Topic: "refunds", Active: true})

	r := te.get("/admin/topics/shop/orders")
	form := formOf(t, r.doc, "Test filters")
	if hasID(r.doc, "tester-results") {
		t.Error("results before a test")
	}
	v := formValues(form)
	v.Set("method", "PUT")
	v.Set("headers", "X-Region: eu")
	v.Set("body", `{"total": 250, "name": "x"}`)
	action, _ := attr(form, "action")
	r = te.post(action, v)
	wantStatus(t, r, http.StatusOK)
	results := map[string][]string{}
	for _, row := range tableRows(t, r.doc, "tester-results") {
		results[row[0]] = row[1:]
	}
	want := map[string]string{"big": "matched", "small": "not matched", "everything": "matched", "broken": "filter error",
		"by-header": "matched", "sleeping": "inactive"}
	if len(results) != len(want) {
		t.Errorf("results for %d subscriptions, want %d: %q", len(results), len(want), results)
	}
	for id, res := range want {
		if got := results[id]; len(got) == 0 || got[0] != res {
			t.Errorf("%s: %q, want %s", id, got, res)
		}
	}
	if why := results["broken"][1]; !strings.Contains(why, "filter: ") || len(why) < 15 {
		t.Errorf("filter error without its text: %q", why)
	}
	if why := results["small"][1]; !strings.Contains(why, "false") {
		t.Errorf("not matched without why: %q", why)
	}
	if why := results["sleeping"][1]; !strings.Contains(why, "matched") {
		t.Errorf("inactive without what its filter says: %q", why)
	}
	if why := results["everything"][1]; !strings.Contains(why, "No filter") {
		t.Errorf("no filter: %q", why)
	}
	// The sample is kept in the form.
	kept := byID(t, r.doc, "tester")
	if got := text(byID(t, kept, "test-body")); got != `{"total": 250, "name": "x"}` {
		t.Errorf("body kept as %q", got)
	}
	if got := formValues(formOf(t, r.doc, "Test filters")).Get("method"); got != "PUT" {
		t.Errorf("method kept as %q", got)
	}

	// A non-JSON body is a string; POST is not put.
	v.Set("method", "POST")
	v.Set("body", "plain text")
	r = te.post(action, v)
	results = map[string][]string{}
	for _, row := range tableRows(t, r.doc, "tester-results") {
		results[row[0]] = row[1:]
	}
	// data["body"]["total"] is None then: None > 100 is an error, as at fan-out.
	if results["by-header"][0] != "not matched" || results["big"][0] != "filter error" || results["everything"][0] != "matched" {
		t.Errorf("plain body results %q", results)
	}

	// Bad header lines: said, nothing tested.
	v.Set("headers", "no colon")
	r = te.post(action, v)
	wantStatus(t, r, http.StatusBadRequest)
	if got := text(byID(t, r.doc, "tester-error")); !strings.Contains(got, "headers: line 1") {
		t.Errorf("tester error %q", got)
	}
	if hasID(r.doc, "tester-results") {
		t.Error("results despite bad headers")
	}

	// A topic without subscriptions says so.
	r = te.post("/admin/topics/shop/empty/test", url.Values{"body": {"{}"}})
	if got := text(byID(t, r.doc, "tester-results")); !strings.Contains(got, "no subscriptions") {
		t.Errorf("empty topic: %q", got)
	}
	if te.store.get("shop", "big") == nil || len(te.msgs.msgs) != 0 {
		t.Error("the tester changed something")
	}
}

func TestMessagePage(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	now := te.clock.Now()
	te.msgs.add(&topic.Message{App: "shop", ID: "m-1", Topic: "orders", Mode: topic.ModeAllOrNothing, Status: topic.MessageRolledBack,
		Method: "POST", Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"total":5}`),
		DueAt: now, CreatedAt: now.Add(-time.Second), UpdatedAt: now,
		Deliveries: []topic.Delivery{
			{Subscription: "billing", EventID: "m-1~billing", Status: scheduler.StatusCompleted, Attempts: 1},
			{Subscription: "audit", EventID: "m-1~audit", Status: scheduler.StatusFailed, Attempts: 3},
		},
		Rollbacks:    []topic.Delivery{{Subscription: "billing", EventID: "m-1!billing", Status: scheduler.StatusCompleted, Attempts: 1}},
		FilterErrors: []topic.FilterError{{Subscription: "broken", Error: "filter: invalid operation: < (mismatched types string and int)"}},
	})
	r := te.get("/admin/messages/shop/m-1")
	wantStatus(t, r, http.StatusOK)
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "m-1" {
		t.Errorf("heading %q", h)
	}
	if got := text(byID(t, r.doc, "status")); got != "ROLLED_BACK" {
		t.Errorf("status %q", got)
	}
	var rows []string
	for _, row := range findAll(byID(t, r.doc, "fields"), func(n *htmlNode) bool { c, _ := attr(n, "class"); return c == "row" }) {
		var cells []string
		for _, c := range findAll(row, func(n *htmlNode) bool { return n.Data == "dt" || n.Data == "dd" }) {
			cells = append(cells, text(c))
		}
		rows = append(rows, strings.Join(cells, " "))
	}
	fields := strings.Join(rows, "\n")
	if !hasText(fields, "Topic orders", "Mode all_or_nothing", "Method POST", "Due 2025-03-14T15:09:26.535Z now", "Status ROLLED_BACK") {
		t.Errorf("fields %q", fields)
	}
	if got := tableRows(t, r.doc, "deliveries"); fmt.Sprint(got) != "[[billing m-1~billing COMPLETED 1] [audit m-1~audit FAILED 3]]" {
		t.Errorf("deliveries %q", got)
	}
	if got := tableHeader(t, r.doc, "deliveries"); fmt.Sprint(got) != "[Subscription Event Status Attempts]" {
		t.Errorf("delivery columns %q", got)
	}
	if got := tableRows(t, r.doc, "rollbacks"); fmt.Sprint(got) != "[[billing m-1!billing COMPLETED 1]]" {
		t.Errorf("rollbacks %q", got)
	}
	if got := tableRows(t, r.doc, "filter-errors"); len(got) != 1 || got[0][0] != "broken" || !strings.Contains(got[0][1], "mismatched types") {
		t.Errorf("filter errors %q", got)
	}
	if got := text(byID(t, r.doc, "body")); got != `{"total":5}` {
		t.Errorf("body %q", got)
	}
	if slices.Contains(buttons(r.doc), "Cancel") {
		t.Error("a ROLLED_BACK message offers Cancel")
	}
	if l := links(r.doc, "orders"); fmt.Sprint(l) != "[/admin/topics/shop/orders]" {
		t.Errorf("topic link %v", l)
	}
	// Event links: '~' and '!' are escaped as a path segment needs, and the
	// event page they lead to is the event's.
	for _, id := range []string{"m-1~billing", "m-1!billing"} {
		l := links(r.doc, id)
		if len(l) != 1 || l[0] != "/admin"+eventPath("shop", id) {
			t.Errorf("%s links %v", id, l)
			continue
		}
		te.fb.add(ev("shop", id, scheduler.StatusCompleted))
		er := te.get(l[0])
		wantStatus(t, er, http.StatusOK)
		if h := text(findAll(er.doc, tag("h1"))[0]); h != id {
			t.Errorf("%s: the link opens event %q", id, h)
		}
	}
	if r := te.get("/admin/messages/shop/nope"); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown message: %d", r.StatusCode)
	}
}

func TestCancelMessage(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	te.msgs.add(&topic.Message{App: "shop", ID: "later", Topic: "orders"})
	page := "/admin/messages/shop/later"
	r := te.get(page)
	form := formOf(t, r.doc, "Cancel")
	action, _ := attr(form, "action")
	wantRedirect(t, te.post(action, formValues(form)), http.StatusSeeOther, page)
	if st := te.msgs.status("shop", "later"); st != topic.MessageCancelled {
		t.Fatalf("status %s after Cancel", st)
	}
	r = te.get(page)
	if got := flashText(t, r.doc); !strings.Contains(got, "Message cancelled") {
		t.Errorf("flash %q", got)
	}
	if got := text(byID(t, r.doc, "status")); got != "CANCELLED" {
		t.Errorf("status %q", got)
	}
	if slices.Contains(buttons(r.doc), "Cancel") {
		t.Error("a CANCELLED message offers Cancel")
	}
	// A second cancel: 409 with the reason, status unchanged.
	r = te.post(action, nil)
	wantStatus(t, r, http.StatusConflict)
	if got := flashText(t, r.doc); !strings.Contains(got, "Cannot cancel this message: it is CANCELLED") {
		t.Errorf("flash %q", got)
	}
	if r := te.post("/admin/messages/shop/nope/cancel", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("cancel of an unknown message: %d", r.StatusCode)
	}
}

func TestTopicsXSSEscaped(t *testing.T) {
	t.Parallel()
	te := setupTopics(t)
	const evil = `"><script>alert(1)</script>`
	te.sub(topic.Subscription{App: "shop", ID: "x", Topic: "orders", Active: true, Filter: `data["a"] == '` + evil + `'`,
		Headers: map[string]string{"X-Evil": evil}})
	te.msgs.add(&topic.Message{App: "shop", ID: "m<script>", Topic: "orders", Body: []byte(evil),
		Deliveries:   []topic.Delivery{{Subscription: "x", EventID: "m<script>~x", Status: scheduler.StatusPending}},
		FilterErrors: []topic.FilterError{{Subscription: "x", Error: evil}}})
	r1 := te.post("/admin/topics/shop/orders/test", url.Values{"body": {evil}, "headers": {"X-A: " + evil}})
	for _, r := range []*response{te.get("/admin/topics"), te.get("/admin/topics/shop/orders"), r1,
		te.get("/admin/topics/shop/orders/subscriptions/x"), te.get("/admin/messages/shop/" + url.PathEscape("m<script>"))} {
		wantStatus(t, r, http.StatusOK)
		if strings.Contains(r.body, "<script>alert") {
			t.Errorf("%s: unescaped markup", r.Request.URL.Path)
		}
		if n := len(findAll(r.doc, tag("script"))); n != 1 {
			t.Errorf("%s: %d <script> elements, want only htmx", r.Request.URL.Path, n)
		}
	}
}
