package api_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestFlowPutGetDelete(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	r := b.do(t, http.MethodPut, "/v1/flows/shop/tenant:1", map[string]any{"rate": 2.5, "parallelism": 3})
	wantStatus(t, r, http.StatusOK)
	limited := `{"app":"shop","key":"tenant:1","rate":2.5,"parallelism":3,"paused":false,"in_flight":0,"held":0}`
	wantJSON(t, r, limited)
	wantJSON(t, b.do(t, http.MethodGet, "/v1/flows/shop/tenant:1", nil), limited)

	// PUT replaces: what is left out or null is no limit.
	r = b.do(t, http.MethodPut, "/v1/flows/shop/tenant:1", map[string]any{"rate": nil, "paused": true})
	wantStatus(t, r, http.StatusOK)
	paused := `{"app":"shop","key":"tenant:1","rate":null,"parallelism":null,"paused":true,"in_flight":0,"held":0}`
	wantJSON(t, r, paused)
	wantJSON(t, b.do(t, http.MethodGet, "/v1/flows/shop/tenant:1", nil), paused)

	// An empty body (or {}) is a record without limits; unknown fields are ignored as on the other v1 routes.
	wantJSON(t, b.do(t, http.MethodPut, "/v1/flows/shop/bulk", ""),
		`{"app":"shop","key":"bulk","rate":null,"parallelism":null,"paused":false,"in_flight":0,"held":0}`)
	wantJSON(t, b.do(t, http.MethodPut, "/v1/flows/blog/a.b-c", map[string]any{"parallelism": 1, "colour": "red"}),
		`{"app":"blog","key":"a.b-c","rate":null,"parallelism":1,"paused":false,"in_flight":0,"held":0}`)

	// The list, sorted by application and key, and of one application.
	r = b.do(t, http.MethodGet, "/v1/flows", nil)
	wantStatus(t, r, http.StatusOK)
	var keys []string
	for _, f := range obj(t, r)["flows"].([]any) {
		m := f.(map[string]any)
		keys = append(keys, m["app"].(string)+"/"+m["key"].(string))
	}
	if strings.Join(keys, " ") != "blog/a.b-c shop/bulk shop/tenant:1" {
		t.Errorf("list %v", keys)
	}
	r = b.do(t, http.MethodGet, "/v1/flows?app=blog", nil)
	wantJSON(t, r, `{"flows":[{"app":"blog","key":"a.b-c","rate":null,"parallelism":1,"paused":false,"in_flight":0,"held":0}]}`)
	wantJSON(t, b.do(t, http.MethodGet, "/v1/flows?app=nobody", nil), `{"flows":[]}`)

	// DELETE answers the record as it was; then there is none.
	wantJSON(t, b.do(t, http.MethodDelete, "/v1/flows/shop/tenant:1", nil), paused)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		e := wantError(t, b.do(t, method, "/v1/flows/shop/tenant:1", nil), http.StatusNotFound, "-")
		if e["code"] != "not_found" || !strings.Contains(e["message"].(string), "flow key") {
			t.Errorf("%s of a deleted key: %v", method, e)
		}
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/flows/shop/never", nil), http.StatusNotFound, "-")
	// A key no PUT could store is not found either (not a 400: nothing is asked of it).
	wantError(t, b.do(t, http.MethodGet, "/v1/flows/shop/a%20b", nil), http.StatusNotFound, "-")
}

func TestFlowInvalid(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	for _, tt := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"rate zero", "/v1/flows/shop/k", map[string]any{"rate": 0}, "rate"},
		{"rate negative", "/v1/flows/shop/k", map[string]any{"rate": -1}, "rate"},
		{"rate a string", "/v1/flows/shop/k", map[string]any{"rate": "fast"}, "rate"},
		{"rate too high", "/v1/flows/shop/k", map[string]any{"rate": 2e6}, "rate"},
		{"parallelism zero", "/v1/flows/shop/k", map[string]any{"parallelism": 0}, "parallelism"},
		{"parallelism negative", "/v1/flows/shop/k", map[string]any{"parallelism": -3}, "parallelism"},
		{"parallelism fractional", "/v1/flows/shop/k", map[string]any{"parallelism": 1.5}, "parallelism"},
		{"parallelism a string", "/v1/flows/shop/k", map[string]any{"parallelism": "2"}, "parallelism"},
		{"parallelism too high", "/v1/flows/shop/k", map[string]any{"parallelism": 2_000_000}, "parallelism"},
		{"paused a string", "/v1/flows/shop/k", map[string]any{"paused": "yes"}, "paused"},
		{"key with a space", "/v1/flows/shop/a%20b", map[string]any{}, "key"},
		{"key too long", "/v1/flows/shop/" + strings.Repeat("k", 129), map[string]any{}, "key"},
		{"app", "/v1/flows/bad%20app/k", map[string]any{}, "app"},
		{"not JSON", "/v1/flows/shop/k", "{rate:1}", ""},
		{"not an object", "/v1/flows/shop/k", "[1]", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, b.do(t, http.MethodPut, tt.path, tt.body), http.StatusBadRequest, tt.field)
		})
	}
	// Nothing was stored by the refused requests.
	wantJSON(t, b.do(t, http.MethodGet, "/v1/flows", nil), `{"flows":[]}`)
	wantError(t, b.do(t, http.MethodGet, "/v1/flows?app=bad%20app", nil), http.StatusBadRequest, "app")
}

func TestFlowTenancy(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, true)
	admin, shop := bearer(adminToken), b.key("shop")
	wantStatus(t, b.do(t, http.MethodPut, "/v1/flows/billing/k", map[string]any{"rate": 1}, admin...), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodPut, "/v1/flows/shop/k", map[string]any{"rate": 1}, shop...), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/flows/shop/k", nil, shop...), http.StatusOK)
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPut, "/v1/flows/billing/k", map[string]any{"rate": 5}},
		{http.MethodPut, "/v1/flows/billing/new", map[string]any{}},
		{http.MethodGet, "/v1/flows/billing/k", nil},
		{http.MethodDelete, "/v1/flows/billing/k", nil},
		{http.MethodGet, "/v1/flows?app=billing", nil},
	} {
		wantError(t, b.do(t, tt.method, tt.path, tt.body, shop...), http.StatusForbidden, "app")
	}
	// billing's key is as the admin left it.
	if o := obj(t, b.do(t, http.MethodGet, "/v1/flows/billing/k", nil, admin...)); o["rate"] != 1.0 {
		t.Errorf("billing's key after refused changes: %v", o)
	}
	r := b.do(t, http.MethodGet, "/v1/flows", nil, shop...)
	if fl := obj(t, r)["flows"].([]any); len(fl) != 1 || fl[0].(map[string]any)["app"] != "shop" {
		t.Errorf("shop's key lists %s, want its own key only", r)
	}
	if fl := obj(t, b.do(t, http.MethodGet, "/v1/flows", nil, admin...))["flows"].([]any); len(fl) != 2 {
		t.Errorf("the admin token lists %d keys, want 2", len(fl))
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/flows", nil), http.StatusUnauthorized, "")
	wantError(t, b.do(t, http.MethodPut, "/v1/flows/shop/k", map[string]any{}), http.StatusUnauthorized, "")
}

func TestAppPause(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, true)
	admin, shop := bearer(adminToken), b.key("shop")

	// Only the admin token pauses and resumes, even an application's own.
	for _, path := range []string{"/v1/apps/shop/pause", "/v1/apps/shop/resume", "/v1/apps/billing/pause"} {
		wantError(t, b.do(t, http.MethodPost, path, nil, shop...), http.StatusForbidden, "")
		wantError(t, b.do(t, http.MethodPost, path, nil), http.StatusUnauthorized, "")
	}
	if o := obj(t, b.do(t, http.MethodGet, "/v1/apps/shop", nil, admin...)); o["paused"] != false {
		t.Errorf("GET /v1/apps/shop before any pause: paused = %v", o["paused"])
	}

	r := b.do(t, http.MethodPost, "/v1/apps/shop/pause", nil, admin...)
	wantJSON(t, r, `{"app":"shop","paused":true,"held":0}`)
	wantJSON(t, b.do(t, http.MethodPost, "/v1/apps/shop/pause", nil, admin...), `{"app":"shop","paused":true,"held":0}`)
	if o := obj(t, b.do(t, http.MethodGet, "/v1/apps/shop", nil, admin...)); o["paused"] != true {
		t.Errorf("GET /v1/apps/shop while paused: paused = %v", o["paused"])
	}
	if o := obj(t, b.do(t, http.MethodGet, "/v1/apps/billing", nil, admin...)); o["paused"] != false {
		t.Errorf("billing is paused too: %v", o["paused"])
	}
	wantJSON(t, b.do(t, http.MethodPost, "/v1/apps/shop/resume", nil, admin...), `{"app":"shop","paused":false,"held":0}`)
	if o := obj(t, b.do(t, http.MethodGet, "/v1/apps/shop", nil, admin...)); o["paused"] != false {
		t.Errorf("GET /v1/apps/shop after resume: paused = %v", o["paused"])
	}

	// An application that does not exist is not found, as GET /v1/apps/{app}.
	for _, path := range []string{"/v1/apps/nobody/pause", "/v1/apps/nobody/resume", "/v1/apps/bad%20name/pause"} {
		e := wantError(t, b.do(t, http.MethodPost, path, nil, admin...), http.StatusNotFound, "")
		if e["code"] != "app_not_found" {
			t.Errorf("%s: %v", path, e)
		}
	}
}

// With authentication off events need no registered application, so any
// valid application name can be paused.
func TestAppPauseWithoutAuth(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, false)
	wantJSON(t, b.do(t, http.MethodPost, "/v1/apps/unregistered/pause", nil), `{"app":"unregistered","paused":true,"held":0}`)
	wantJSON(t, b.do(t, http.MethodPost, "/v1/apps/unregistered/resume", nil), `{"app":"unregistered","paused":false,"held":0}`)
	wantError(t, b.do(t, http.MethodPost, "/v1/apps/bad%20name/pause", nil), http.StatusBadRequest, "app")
}
