package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/tenant"
)

// flowsEnv is a logged-in UI with Flows over a fake store.
type flowsEnv struct {
	*testEnv
	store *fakeFlowStore
}

func setupFlows(t *testing.T, mod ...func(*Config)) *flowsEnv {
	t.Helper()
	fe := &flowsEnv{}
	fe.testEnv = setup(t, append([]func(*Config){withFlows(&fe.store)}, mod...)...)
	fe.login()
	return fe
}

// put stores a key's limits as the API would.
func (fe *flowsEnv) put(app, key string, l flow.Limits) {
	fe.t.Helper()
	if _, err := fe.ui.cfg.Flows.Put(context.Background(), app, key, l); err != nil {
		fe.t.Fatalf("put %s/%s: %v", app, key, err)
	}
}

func TestFlowsNotEnabled(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	r := e.get("/admin/flows")
	wantStatus(t, r, http.StatusOK)
	if got := text(byID(t, r.doc, "flows-disabled")); !strings.Contains(got, "not enabled") {
		t.Errorf("note %q", got)
	}
	if l := links(r.doc, "Flows"); len(l) != 1 || l[0] != "/admin/flows" {
		t.Errorf("Flows nav links %v", l)
	}
	if r := e.post("/admin/flows", url.Values{"app": {"shop"}, "key": {"k"}}); r.StatusCode != http.StatusNotFound {
		t.Errorf("setting limits without Flows: %d, want 404", r.StatusCode)
	}
}

func TestFlowsPage(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t)
	fe.put("shop", "tenant:1", flow.Limits{Rate: 2.5, Parallelism: 3})
	fe.put("shop", "bulk", flow.Limits{Paused: true})
	fe.put("blog", "feed", flow.Limits{Parallelism: 1})
	fe.store.state("shop", "tenant:1", 2, 7)

	r := fe.get("/admin/flows")
	wantStatus(t, r, http.StatusOK)
	if got := tableHeader(t, r.doc, "flows"); fmt.Sprint(got) != "[Application Key Rate Parallelism Status In flight Held Actions]" {
		t.Errorf("columns %q", got)
	}
	want := [][]string{
		{"blog", "feed", "—", "1", "active", "0", "0"},
		{"shop", "bulk", "—", "—", "paused", "0", "0"},
		{"shop", "tenant:1", "2.5/s", "3", "active", "2", "7"},
	}
	var got [][]string
	for _, row := range tableRows(t, r.doc, "flows") {
		got = append(got, row[:7])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("flows\n%q\nwant\n%q", got, want)
	}
	// Each row's actions: a paused key offers Resume, an active one Pause.
	if b := buttons(byID(t, r.doc, "flows")); fmt.Sprint(b) != "[Pause Delete Resume Delete Pause Delete]" {
		t.Errorf("row buttons %q", b)
	}
	nav := findAll(r.doc, tag("nav"))[0]
	var cur []string
	for _, a := range findAll(nav, tag("a")) {
		if v, _ := attr(a, "aria-current"); v == "page" {
			cur = append(cur, text(a))
		}
	}
	if fmt.Sprint(cur) != "[Flows]" {
		t.Errorf("current nav link %v", cur)
	}
	if !strings.Contains(text(byID(t, r.doc, "no-paused-apps")), "No application is paused") {
		t.Error("no paused application is not said")
	}

	// Filtered by application; a malformed filter is refused.
	r = fe.get("/admin/flows?app=shop")
	if got := tableRows(t, r.doc, "flows"); len(got) != 2 || got[0][1] != "bulk" || got[1][1] != "tenant:1" {
		t.Errorf("flows of shop %q", got)
	}
	r = fe.get("/admin/flows?app=" + url.QueryEscape("bad app"))
	wantStatus(t, r, http.StatusBadRequest)
	if got := flashText(t, r.doc); !strings.Contains(got, "app") {
		t.Errorf("bad filter flash %q", got)
	}

	// Edit fills the form with the key's limits.
	r = fe.get("/admin/flows?app=shop")
	edit := links(r.doc, "Edit")
	if len(edit) != 2 || edit[1] != "/admin/flows?edit="+url.QueryEscape("shop/tenant:1") {
		t.Fatalf("Edit links %v", edit)
	}
	r = fe.get(edit[1])
	wantStatus(t, r, http.StatusOK)
	v := formValues(byID(t, r.doc, "flow-form"))
	if v.Get("app") != "shop" || v.Get("key") != "tenant:1" || v.Get("rate") != "2.5" || v.Get("parallelism") != "3" {
		t.Errorf("form filled with %v", v)
	}
	if checked, _ := attr(byID(t, r.doc, "flow-paused"), "checked"); checked != "" {
		t.Error("an active key's form is checked Paused")
	}
	if r := fe.get("/admin/flows?edit=shop/none"); r.StatusCode != http.StatusNotFound {
		t.Errorf("editing an unknown key: %d, want 404", r.StatusCode)
	}

	// Storage trouble is the error page, not a half-drawn list.
	fe.store.mu.Lock()
	fe.store.err = context.DeadlineExceeded
	fe.store.mu.Unlock()
	wantStatus(t, fe.get("/admin/flows"), http.StatusInternalServerError)
}

func TestFlowsSetLimits(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t)
	r := fe.post("/admin/flows", url.Values{"app": {"shop"}, "key": {"tenant:1"}, "rate": {"0.5"}, "parallelism": {"4"}})
	wantRedirect(t, r, http.StatusSeeOther, "/admin/flows")
	if st := fe.store.get("shop", "tenant:1"); st == nil || st.Limits != (flow.Limits{Rate: 0.5, Parallelism: 4}) {
		t.Fatalf("stored %+v", st)
	}
	r = fe.get("/admin/flows")
	if got := flashText(t, r.doc); got != "Flow key tenant:1 of shop saved." {
		t.Errorf("flash %q", got)
	}
	if got := tableRows(t, r.doc, "flows"); len(got) != 1 || fmt.Sprint(got[0][:5]) != "[shop tenant:1 0.5/s 4 active]" {
		t.Errorf("rows %q", got)
	}

	// Saving replaces: empty limits are none, the box pauses.
	r = fe.post("/admin/flows", url.Values{"app": {"shop"}, "key": {"tenant:1"}, "rate": {""}, "paused": {"true"}})
	wantRedirect(t, r, http.StatusSeeOther, "/admin/flows")
	if st := fe.store.get("shop", "tenant:1"); st.Limits != (flow.Limits{Paused: true}) {
		t.Errorf("after replacing: %+v", st.Limits)
	}

	// Refusals come back on the form, naming the field, with what was typed.
	for _, tt := range []struct {
		name  string
		form  url.Values
		field string
	}{
		{"rate zero", url.Values{"app": {"shop"}, "key": {"k"}, "rate": {"0"}}, "rate"},
		{"rate a word", url.Values{"app": {"shop"}, "key": {"k"}, "rate": {"fast"}}, "rate"},
		{"rate too high", url.Values{"app": {"shop"}, "key": {"k"}, "rate": {"2e6"}}, "rate"},
		{"parallelism zero", url.Values{"app": {"shop"}, "key": {"k"}, "parallelism": {"0"}}, "parallelism"},
		{"parallelism fractional", url.Values{"app": {"shop"}, "key": {"k"}, "parallelism": {"1.5"}}, "parallelism"},
		{"key", url.Values{"app": {"shop"}, "key": {"a b"}, "rate": {"1"}}, "key"},
		{"key empty", url.Values{"app": {"shop"}, "key": {""}}, "key"},
		{"app", url.Values{"app": {"bad app"}, "key": {"k"}}, "app"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := fe.post("/admin/flows", tt.form)
			wantStatus(t, r, http.StatusBadRequest)
			if got := text(byID(t, r.doc, "flow-form-error")); !strings.HasPrefix(got, tt.field+": ") {
				t.Errorf("form error %q, want it to name %s", got, tt.field)
			}
			input := byID(t, r.doc, "flow-"+tt.field)
			if v, _ := attr(input, "aria-invalid"); v != "true" {
				t.Errorf("#flow-%s is not marked invalid", tt.field)
			}
			if v := formValues(byID(t, r.doc, "flow-form")); v.Get("app") != tt.form.Get("app") || v.Get("key") != tt.form.Get("key") {
				t.Errorf("the form lost what was typed: %v", v)
			}
		})
	}
	if st := fe.store.get("shop", "k"); st != nil {
		t.Errorf("a refused form stored %+v", st)
	}
}

func TestFlowsPauseResumeDelete(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t)
	fe.put("shop", "tenant:1", flow.Limits{Rate: 3, Parallelism: 2})

	r := fe.get("/admin/flows")
	form := formOf(t, r.doc, "Pause")
	action, _ := attr(form, "action")
	if action != "/admin/flows/shop/tenant:1/pause" {
		t.Errorf("Pause posts to %q", action)
	}
	wantRedirect(t, fe.post(action, formValues(form)), http.StatusSeeOther, "/admin/flows")
	if st := fe.store.get("shop", "tenant:1"); st.Limits != (flow.Limits{Rate: 3, Parallelism: 2, Paused: true}) {
		t.Errorf("paused key %+v, want its limits kept", st.Limits)
	}
	r = fe.get("/admin/flows")
	if got := flashText(t, r.doc); !strings.HasPrefix(got, "Flow key tenant:1 of shop paused") {
		t.Errorf("flash %q", got)
	}

	form = formOf(t, r.doc, "Resume")
	action, _ = attr(form, "action")
	wantRedirect(t, fe.post(action, formValues(form)), http.StatusSeeOther, "/admin/flows")
	if st := fe.store.get("shop", "tenant:1"); st.Limits != (flow.Limits{Rate: 3, Parallelism: 2}) {
		t.Errorf("resumed key %+v", st.Limits)
	}
	wantStatus(t, fe.post("/admin/flows/shop/none/pause", nil), http.StatusNotFound)

	// Delete asks first.
	r = fe.get("/admin/flows")
	form = formOf(t, r.doc, "Delete")
	action, _ = attr(form, "action")
	r = fe.post(action, formValues(form))
	wantStatus(t, r, http.StatusOK)
	if fe.store.get("shop", "tenant:1") == nil {
		t.Fatal("deleted before confirming")
	}
	if h := text(byID(t, r.doc, "h-confirm")); !strings.Contains(h, "tenant:1") {
		t.Errorf("confirmation heading %q", h)
	}
	confirm := formOf(t, r.doc, "Confirm")
	action, _ = attr(confirm, "action")
	wantRedirect(t, fe.post(action, formValues(confirm)), http.StatusSeeOther, "/admin/flows")
	if st := fe.store.get("shop", "tenant:1"); st != nil {
		t.Errorf("still stored after delete: %+v", st)
	}
	r = fe.get("/admin/flows")
	if got := flashText(t, r.doc); !strings.HasPrefix(got, "Flow key tenant:1 of shop deleted") {
		t.Errorf("flash %q", got)
	}
	wantStatus(t, fe.post("/admin/flows/shop/tenant:1/delete", url.Values{"confirm": {"yes"}}), http.StatusNotFound)
}

func TestFlowsAppPause(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t)
	r := fe.get("/admin/flows")
	pause := formOf(t, r.doc, "Pause application")
	action, _ := attr(pause, "action")
	v := formValues(pause)
	v.Set("app", "shop")

	// Pausing asks first, then pauses.
	r = fe.post(action, v)
	wantStatus(t, r, http.StatusOK)
	if fe.store.isPaused("shop") {
		t.Fatal("paused before confirming")
	}
	confirm := formOf(t, r.doc, "Confirm")
	action, _ = attr(confirm, "action")
	if cv := formValues(confirm); cv.Get("app") != "shop" || cv.Get("confirm") != "yes" {
		t.Errorf("confirmation form %v", cv)
	}
	wantRedirect(t, fe.post(action, formValues(confirm)), http.StatusSeeOther, "/admin/flows")
	if !fe.store.isPaused("shop") {
		t.Fatal("not paused after confirming")
	}
	fe.store.mu.Lock()
	fe.store.held["shop"] = 12
	fe.store.mu.Unlock()
	r = fe.get("/admin/flows")
	if got := flashText(t, r.doc); !strings.HasPrefix(got, "Application shop paused") {
		t.Errorf("flash %q", got)
	}
	if got := tableRows(t, r.doc, "paused-apps"); fmt.Sprint(got) != "[[shop 12 Resume]]" {
		t.Errorf("paused applications %q", got)
	}

	resume := formOf(t, r.doc, "Resume")
	action, _ = attr(resume, "action")
	wantRedirect(t, fe.post(action, formValues(resume)), http.StatusSeeOther, "/admin/flows")
	if fe.store.isPaused("shop") {
		t.Error("still paused after Resume")
	}
	r = fe.get("/admin/flows")
	if got := flashText(t, r.doc); !strings.HasPrefix(got, "Application shop resumed") {
		t.Errorf("flash %q", got)
	}
	if hasID(r.doc, "paused-apps") {
		t.Error("the paused applications table stays after the resume")
	}

	// A malformed name is refused next to the form.
	r = fe.post("/admin/app-pause", url.Values{"app": {"bad app"}})
	wantStatus(t, r, http.StatusBadRequest)
	if got := text(byID(t, r.doc, "app-pause-error")); !strings.HasPrefix(got, "app: ") {
		t.Errorf("error %q", got)
	}
}

func TestFlowsAppPauseKnownApps(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t, func(c *Config) { c.Apps = &fakeApps{apps: []*tenant.App{{Name: "shop"}}} })
	r := fe.post("/admin/app-pause", url.Values{"app": {"nobody"}, "confirm": {"yes"}})
	wantStatus(t, r, http.StatusBadRequest)
	if got := text(byID(t, r.doc, "app-pause-error")); !strings.Contains(got, "no application") {
		t.Errorf("error %q", got)
	}
	if fe.store.isPaused("nobody") {
		t.Error("an unknown application was paused")
	}
	wantRedirect(t, fe.post("/admin/app-pause", url.Values{"app": {"shop"}, "confirm": {"yes"}}), http.StatusSeeOther, "/admin/flows")
	if !fe.store.isPaused("shop") {
		t.Error("shop not paused")
	}
}

// TestFlowsCSRF: every state-changing form of the page is refused without
// the token, and nothing changes.
func TestFlowsCSRF(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t)
	fe.put("shop", "k", flow.Limits{Rate: 1})
	for _, tt := range []struct {
		path string
		form url.Values
	}{
		{"/admin/flows", url.Values{"app": {"shop"}, "key": {"k"}, "rate": {"9"}}},
		{"/admin/flows/shop/k/pause", nil},
		{"/admin/flows/shop/k/delete", url.Values{"confirm": {"yes"}}},
		{"/admin/app-pause", url.Values{"app": {"shop"}, "confirm": {"yes"}}},
	} {
		form := url.Values{"csrf": {"forged"}}
		for k, v := range tt.form {
			form[k] = v
		}
		wantStatus(t, fe.post(tt.path, form), http.StatusForbidden)
		wantStatus(t, fe.post(tt.path, tt.form, "Origin", "https://evil.example"), http.StatusForbidden)
	}
	if st := fe.store.get("shop", "k"); st == nil || st.Limits != (flow.Limits{Rate: 1}) {
		t.Errorf("after refused posts: %+v", st)
	}
	if fe.store.isPaused("shop") {
		t.Error("a refused post paused shop")
	}
}

func TestFlowFlash(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ code, arg, want string }{
		{"flow-set", "shop/k", "Flow key k of shop saved."},
		{"flow-set", "shop/<script>", ""},
		{"flow-set", "nokey", ""},
		{"app-pause", "shop", "Application shop paused: its events are held until it is resumed."},
		{"app-resume", "bad app", ""},
		{"sch-pause", "x", ""},
	} {
		got := ""
		if f := flowFlash(tt.code, tt.arg); f != nil {
			got = f.Text
		}
		if got != tt.want {
			t.Errorf("flowFlash(%q, %q) = %q, want %q", tt.code, tt.arg, got, tt.want)
		}
	}
}

// TestAppsPagePause: with Flows, the Applications page shows each
// application's pause and toggles it, returning to itself.
func TestAppsPagePause(t *testing.T) {
	t.Parallel()
	fe := setupFlows(t, func(c *Config) {
		c.Apps = &fakeApps{apps: []*tenant.App{{Name: "blog"}, {Name: "shop"}}}
	})
	r := fe.get("/admin/apps")
	wantStatus(t, r, http.StatusOK)
	if h := tableHeader(t, r.doc, "apps"); h[len(h)-1] != "Delivery" {
		t.Errorf("columns %q", h)
	}
	form := findAll(byID(t, r.doc, "apps"), tag("form"))[1] // shop's
	v := formValues(form)
	if v.Get("app") != "shop" || v.Get("back") != "apps" {
		t.Fatalf("shop's pause form %v", v)
	}
	r = fe.post("/admin/app-pause", v)
	wantStatus(t, r, http.StatusOK)
	confirm := formOf(t, r.doc, "Confirm")
	if back := links(r.doc, "Back"); len(back) != 1 || back[0] != "/admin/apps" {
		t.Errorf("the confirmation goes back to %v", back)
	}
	wantRedirect(t, fe.post("/admin/app-pause", formValues(confirm)), http.StatusSeeOther, "/admin/apps")
	if !fe.store.isPaused("shop") || fe.store.isPaused("blog") {
		t.Fatal("shop (only) should be paused")
	}
	r = fe.get("/admin/apps")
	if got := flashText(t, r.doc); !strings.HasPrefix(got, "Application shop paused") {
		t.Errorf("flash %q", got)
	}
	rows := tableRows(t, r.doc, "apps")
	if last := rows[1][len(rows[1])-1]; !strings.Contains(last, "paused") || !strings.Contains(last, "0 held") {
		t.Errorf("shop's delivery cell %q", last)
	}
	if last := rows[0][len(rows[0])-1]; !strings.Contains(last, "active") {
		t.Errorf("blog's delivery cell %q", last)
	}
	resume := formOf(t, r.doc, "Resume")
	wantRedirect(t, fe.post("/admin/app-resume", formValues(resume)), http.StatusSeeOther, "/admin/apps")
	if fe.store.isPaused("shop") {
		t.Error("shop still paused")
	}

	// Without Flows the page has no such column.
	e := setup(t, func(c *Config) { c.Apps = &fakeApps{apps: []*tenant.App{{Name: "shop"}}} })
	e.login()
	if h := tableHeader(t, e.get("/admin/apps").doc, "apps"); h[len(h)-1] == "Delivery" {
		t.Errorf("columns without Flows %q", h)
	}
}
