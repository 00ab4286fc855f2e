package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

// flowRow finds the row of a flow key in the flows table.
func flowRow(key string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//table[@id='flows']//tr[td[2][normalize-space(.)='%s']]`, key))
}

// flowButton finds the button labelled label in the row of a flow key.
func flowButton(key, label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//table[@id='flows']//tr[td[2][normalize-space(.)='%s']]//button[normalize-space(.)='%s']`, key, label))
}

// pausedAppRow finds the row of a paused application.
func pausedAppRow(name string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//table[@id='paused-apps']//tr[td[1][normalize-space(.)='%s']]`, name))
}

// TestFlows: an operator sets a flow key's limits through the form (a
// rate of 0 is refused with the field named, what was typed kept), sees
// the key listed with them, pauses and resumes it; then pauses the whole
// application (after confirming): an event due now is held, PENDING, and
// counted on the page, and after Resume it is delivered.
func TestFlows(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()

	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Flows"))
	tb.landOn("/admin/flows", heading("Flows"))
	if !tb.has(textNode("No flow keys with limits.")) || !tb.has(textNode("No application is paused.")) {
		t.Error("the empty page does not say there are no keys and no paused applications")
	}

	// A rate of 0 is refused next to the form, naming the field.
	tb.fill(byID("flow-app"), app)
	tb.fill(byID("flow-key"), "tenant:1")
	tb.fill(byID("flow-rate"), "0")
	tb.fill(byID("flow-parallelism"), "3")
	tb.click(button("Save limits"))
	tb.waitText(byID("flow-form-error"), "the refused rate", func(s string) bool { return strings.HasPrefix(s, "rate: ") })
	if v := tb.value(byID("flow-key")); v != "tenant:1" {
		t.Errorf("after a refusal the key field holds %q", v)
	}
	if _, err := s.flows.Get(ctx, app, "tenant:1"); err == nil {
		t.Fatal("a refused key was stored")
	}
	tb.screenshot("flows-form-error")

	// Saved: listed with its limits.
	tb.fill(byID("flow-rate"), "2.5")
	tb.click(button("Save limits"))
	tb.waitText(byID("flash"), "save", equals("Flow key tenant:1 of shop saved."))
	row := tb.text(flowRow("tenant:1"))
	for _, want := range []string{app, "tenant:1", "2.5/s", "3", "active"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
	if st, err := s.flows.Get(ctx, app, "tenant:1"); err != nil || st.Limits != (flow.Limits{Rate: 2.5, Parallelism: 3}) {
		t.Fatalf("stored %+v (%v)", st, err)
	}
	tb.screenshot("flows")

	// Pause and resume the key: the limits stay.
	tb.click(flowButton("tenant:1", "Pause"))
	tb.waitText(byID("flash"), "pause key", func(s string) bool { return strings.HasPrefix(s, "Flow key tenant:1 of shop paused") })
	if row := tb.text(flowRow("tenant:1")); !strings.Contains(row, "paused") {
		t.Errorf("row after Pause %q", row)
	}
	if st, _ := s.flows.Get(ctx, app, "tenant:1"); st == nil || st.Limits != (flow.Limits{Rate: 2.5, Parallelism: 3, Paused: true}) {
		t.Errorf("after Pause the key is %+v", st)
	}
	tb.screenshot("flows-key-paused")
	tb.click(flowButton("tenant:1", "Resume"))
	tb.waitText(byID("flash"), "resume key", equals("Flow key tenant:1 of shop resumed."))
	if row := tb.text(flowRow("tenant:1")); !strings.Contains(row, "active") {
		t.Errorf("row after Resume %q", row)
	}
	if st, _ := s.flows.Get(ctx, app, "tenant:1"); st == nil || st.Paused {
		t.Errorf("after Resume the key is %+v", st)
	}

	// Pause the application, after confirming.
	tb.fill(byID("pause-app"), app)
	tb.click(button("Pause application"))
	tb.landOn("/admin/app-pause", heading("Pause application shop?"))
	tb.screenshot("flows-app-pause-confirm")
	if p, _ := s.flows.AppPaused(ctx, app); p.Paused {
		t.Fatal("paused before confirming")
	}
	tb.click(button("Confirm"))
	tb.landOn("/admin/flows", byID("flash"))
	tb.waitText(byID("flash"), "pause app", func(s string) bool { return strings.HasPrefix(s, "Application shop paused") })
	if p, _ := s.flows.AppPaused(ctx, app); !p.Paused {
		t.Fatal("not paused after confirming")
	}

	// An event due now is held: PENDING, counted on the page.
	s.create(app, "held-1", "/ok", time.Now(), 3)
	s.waitFor(10*time.Second, func() string {
		tb.navigate("/admin/flows")
		if held := tb.text(pausedAppRow(app) + "/td[2]"); held != "1" {
			return fmt.Sprintf("the paused application holds %q, want 1", held)
		}
		return ""
	})
	if st := s.status(app, "held-1"); st != scheduler.StatusPending {
		t.Errorf("a paused application's event is %s, want PENDING", st)
	}
	tb.screenshot("flows-app-paused")

	// Resume: the held event is delivered.
	tb.click(pausedAppRow(app) + `//button[normalize-space(.)='Resume']`)
	tb.waitText(byID("flash"), "resume app", func(s string) bool { return strings.HasPrefix(s, "Application shop resumed") })
	s.waitStatus(app, "held-1", scheduler.StatusCompleted)
	if !tb.has(textNode("No application is paused.")) {
		t.Error("after Resume the page still lists a paused application")
	}
}
