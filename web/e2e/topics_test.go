package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// rowButton finds the button labelled label in the table row of the
// subscription id.
func rowButton(id, label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//table[@id='subscriptions']//tr[td[1][normalize-space(.)='%s']]//*[self::button or self::a][normalize-space(.)='%s']`, id, label))
}

// resultOf reads the filter tester's result for a subscription.
func (tb *tab) resultOf(id string) string {
	tb.t.Helper()
	return tb.text(chromedp.Search(fmt.Sprintf(`//table[@id='tester-results']//tr[td[1][normalize-space(.)='%s']]/td[2]`, id)))
}

// TestTopics: an operator opens a topic, creates subscriptions through the
// form (a bad filter is refused with its reason, the typed values kept),
// tests a sample message against their filters, edits and disables them;
// a message published through the JSON API shows on the topic's page and on
// its own page with its delivery COMPLETED at a real destination.
func TestTopics(t *testing.T) {
	t.Parallel()
	s := setup(t)
	var mu sync.Mutex
	var got []*http.Request
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(dest.Close)

	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Topics"))
	tb.landOn("/admin/topics", heading("Topics"))
	if !tb.has(textNode("No topics with subscriptions.")) {
		t.Error("the empty topics list does not say so")
	}
	// A topic needs no creating: open it by name.
	tb.typeInto(field("app"), app)
	tb.typeInto(field("topic"), "orders")
	tb.click(button("Show"))
	tb.landOn("/admin/topics/shop/orders", heading("orders"))

	create := func(id, filter string) {
		t.Helper()
		tb.typeInto(field("id"), id)
		tb.typeInto(field("url"), dest.URL+"/"+id)
		tb.fill(field("filter"), filter)
		tb.click(button("Create subscription"))
	}
	// A filter that does not compile is refused, with the parser's reason
	// next to the form and what was typed still there.
	create("billing", `data["body"]["total"] >`)
	msg := tb.waitText(byID("form-error"), "the refused filter", func(s string) bool { return strings.HasPrefix(s, "filter: ") })
	t.Logf("refused: %s", msg)
	if v := tb.value(field("url")); v != dest.URL+"/billing" {
		t.Errorf("after a refusal the url field holds %q", v)
	}
	tb.screenshot("topic-form-error")
	if _, err := s.subs.Get(context.Background(), app, "billing"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("a refused subscription was stored (err %v)", err)
	}

	create("billing", `data["body"]["total"] > 100`)
	tb.waitText(byID("flash"), "create billing", equals("Subscription billing created."))
	create("small", `data["body"]["total"] <= 100`)
	tb.waitText(byID("flash"), "create small", equals("Subscription small created."))
	create("broken", `data["body"]["name"] < 3`)
	tb.waitText(byID("flash"), "create broken", equals("Subscription broken created."))
	rows := tb.text(`//table[@id='subscriptions']`)
	for _, want := range []string{"billing", "small", "broken", dest.URL + "/billing", `data["body"]["total"] > 100`} {
		if !strings.Contains(rows, want) {
			t.Errorf("subscriptions table lacks %q:\n%s", want, rows)
		}
	}

	// The filter tester: one matches, one does not, one fails at run time.
	tb.fill(byID("test-body"), `{"total": 250, "name": "x"}`)
	tb.click(button("Test filters"))
	tb.landOn("/admin/topics/shop/orders/test", byID("tester-results"))
	for id, want := range map[string]string{"billing": "matched", "small": "not matched", "broken": "filter error"} {
		if got := tb.resultOf(id); got != want {
			t.Errorf("tester: %s %q, want %q", id, got, want)
		}
	}
	if why := tb.text(`//table[@id='tester-results']//tr[td[1][normalize-space(.)='broken']]/td[3]`); !strings.Contains(why, "filter:") {
		t.Errorf("tester: the filter error is not shown: %q", why)
	}
	tb.screenshot("topic-filter-tester")

	// Edit billing: three attempts at most.
	tb.click(rowButton("billing", "Edit"))
	tb.landOn("/admin/topics/shop/orders/subscriptions/billing", button("Save subscription"))
	tb.typeInto(field("max_attempts"), "3")
	tb.screenshot("subscription-edit")
	tb.click(button("Save subscription"))
	tb.waitText(byID("flash"), "save billing", equals("Subscription billing saved."))
	if sub, err := s.subs.Get(context.Background(), app, "billing"); err != nil || sub.MaxAttempts != 3 || sub.Filter != `data["body"]["total"] > 100` {
		t.Errorf("after the edit billing is %+v (%v)", sub, err)
	}

	// Disable small.
	tb.click(rowButton("small", "Disable"))
	tb.waitText(byID("flash"), "disable small", func(s string) bool { return strings.Contains(s, "small disabled") })
	if sub, err := s.subs.Get(context.Background(), app, "small"); err != nil || sub.Active {
		t.Errorf("after Disable small is %+v (%v)", sub, err)
	}
	if !tb.has(rowButton("small", "Enable")) {
		t.Error("a disabled subscription offers no Enable")
	}

	// A message published through the JSON API.
	body, _ := json.Marshal(map[string]any{"app": app, "topic": "orders", "id": "order-1",
		"body": map[string]any{"total": 250, "name": "x"}})
	res, err := s.srv.Client().Post(s.srv.URL+"/v1/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/messages: %d", res.StatusCode)
	}
	s.waitFor(15*time.Second, func() string {
		m, err := s.msgs.Get(context.Background(), app, "order-1")
		if err != nil {
			return err.Error()
		}
		if m.Status != topic.MessageCompleted {
			return fmt.Sprintf("order-1 is %s", m.Status)
		}
		return ""
	})
	mu.Lock()
	if len(got) != 1 || got[0].URL.Path != "/billing" || got[0].Header.Get("Cassata-Topic") != "orders" {
		t.Errorf("the destination got %d requests (want one to /billing with Cassata-Topic)", len(got))
	}
	mu.Unlock()

	// Back to the topic through the topics list (the browser is on the
	// topic's page already; navigating to the URL it is at can wait on a
	// load event that never comes).
	tb.click(navLink("Topics"))
	tb.landOn("/admin/topics", heading("Topics"))
	tb.click(link("orders"))
	tb.landOn("/admin/topics/shop/orders", heading("orders"))
	tb.waitText(`//table[@id='messages']`, "recent messages", func(s string) bool {
		return strings.Contains(s, "order-1") && strings.Contains(s, "COMPLETED")
	})
	if row := tb.text(`//table[@id='messages']//tr[td[1][normalize-space(.)='order-1']]`); !strings.Contains(row, "1 COMPLETED") {
		t.Errorf("message row %q lacks its delivery count", row)
	}
	tb.screenshot("topic")

	tb.click(chromedp.Search(`//table[@id='messages']//a[normalize-space(.)='order-1']`))
	tb.landOn("/admin/messages/shop/order-1", heading("order-1"))
	tb.waitText(byID("status"), "message status", equals("COMPLETED"))
	delivery := tb.text(`//table[@id='deliveries']//tr[td[1][normalize-space(.)='billing']]`)
	if !strings.Contains(delivery, "order-1~billing") || !strings.Contains(delivery, "COMPLETED") {
		t.Errorf("deliveries row %q", delivery)
	}
	if fe := tb.text(`//table[@id='filter-errors']`); !strings.Contains(fe, "broken") {
		t.Errorf("filter errors %q lack broken", fe)
	}
	if tb.has(button("Cancel")) {
		t.Error("a COMPLETED message offers Cancel")
	}
	tb.screenshot("message")
	tb.click(link("order-1~billing"))
	tb.landOn(eventPath(app, "order-1~billing"), heading("order-1~billing"))
	tb.waitText(byID("status"), "delivery event", equals("COMPLETED"))

	// The topics list counts them.
	tb.click(navLink("Topics"))
	row := tb.waitText(`//table[@id='topics']//tr[td[2][normalize-space(.)='orders']]`, "topics list", func(s string) bool { return s != "" })
	if f := strings.Fields(row); len(f) != 4 || f[2] != "3" || f[3] != "2" {
		t.Errorf("topics row %q, want shop orders 3 subscriptions, 2 active", row)
	}
	tb.screenshot("topics")
}

// TestSubscriptionDelete: deleting a subscription asks first.
func TestSubscriptionDelete(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, id := range []string{"billing", "audit"} {
		sub := &topic.Subscription{App: app, ID: id, Topic: "orders", URL: "https://example.com/" + id, Active: true}
		if _, _, err := s.subs.Create(context.Background(), sub); err != nil {
			t.Fatal(err)
		}
	}
	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Topics"))
	tb.landOn("/admin/topics", heading("Topics"))
	tb.click(link("orders"))
	tb.landOn("/admin/topics/shop/orders", heading("orders"))
	tb.click(rowButton("billing", "Delete"))
	tb.landOn("/admin/topics/shop/orders/subscriptions/billing/delete", heading("Delete subscription billing?"))
	tb.click(button("Confirm"))
	tb.waitText(byID("flash"), "delete billing", equals("Subscription billing deleted."))
	if _, err := s.subs.Get(context.Background(), app, "billing"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("billing still stored after Delete (err %v)", err)
	}
	if tb.has(rowButton("billing", "Edit")) {
		t.Error("billing is still listed")
	}
	if !tb.has(rowButton("audit", "Edit")) {
		t.Error("audit is no longer listed")
	}
}

// TestMessageCancel: a message due later can be cancelled from its page.
func TestMessageCancel(t *testing.T) {
	t.Parallel()
	s := setup(t)
	body, _ := json.Marshal(map[string]any{"app": app, "topic": "orders", "id": "later-1", "delay": "1h", "body": map[string]any{"x": 1}})
	res, err := s.srv.Client().Post(s.srv.URL+"/v1/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/messages: %d", res.StatusCode)
	}
	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.navigate("/admin/messages/shop/later-1")
	tb.waitText(byID("status"), "message status", equals("PENDING"))
	tb.click(button("Cancel"))
	tb.waitText(byID("flash"), "cancel", func(s string) bool { return strings.Contains(s, "Message cancelled") })
	tb.waitText(byID("status"), "message status after Cancel", equals("CANCELLED"))
	if m, err := s.msgs.Get(context.Background(), app, "later-1"); err != nil || m.Status != topic.MessageCancelled {
		t.Errorf("after Cancel the message is %+v (%v)", m, err)
	}
}

// fill types text into a field that may be an empty textarea, which
// chromedp.Clear (in typeInto) refuses: it has no text node to clear.
func (tb *tab) fill(sel chromedp.Search, text string) {
	tb.t.Helper()
	if tb.value(sel) != "" {
		tb.do("clear "+string(sel), chromedp.Clear(sel))
	}
	tb.do("fill "+string(sel), chromedp.SendKeys(sel, text, chromedp.NodeVisible))
}

// landOn waits, after a click that loads a page, until the browser is at
// path and shows sel. Both waits poll: a query sent while the old document
// is being replaced can otherwise wait on a document that is gone.
func (tb *tab) landOn(path string, sel chromedp.Search) {
	tb.t.Helper()
	tb.waitPath("load "+path, func(p string) bool { return p == path })
	tb.waitText(sel, "page "+path, func(string) bool { return true })
}

// value reads a form control's current value.
func (tb *tab) value(sel chromedp.Search) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.timeout(), chromedp.Value(sel, chromedp.NodeVisible))
	if err != nil {
		tb.t.Fatalf("read value of %s: %v", sel, err)
	}
	return v
}
