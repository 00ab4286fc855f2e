package api_test

import (
	"net/http"
	"testing"
)

// TestFlowKeyBatch: a batch item takes flow_key like a single create, and
// refuses an invalid one in its own result, naming the field.
func TestFlowKeyBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, http.MethodPost, "/v1/events/batch", `{"events":[
		{"app":"shop","id":"k1","url":"https://example.com/hook","delay":"1m","flow_key":"tenant:1"},
		{"app":"shop","id":"k2","url":"https://example.com/hook","delay":"1m","flow_key":"no spaces"},
		{"app":"shop","id":"k3","url":"https://example.com/hook","delay":"1m"}
	]}`)
	wantStatus(t, r, http.StatusOK)
	results, _ := obj(t, r)["results"].([]any)
	if len(results) != 3 {
		t.Fatalf("%d results, want 3: %s", len(results), r.body)
	}
	res := func(i int) map[string]any { m, _ := results[i].(map[string]any); return m }
	if ev, _ := res(0)["event"].(map[string]any); res(0)["status"] != 201.0 || ev["flow_key"] != "tenant:1" {
		t.Errorf("item with a flow key: %v", res(0))
	}
	if e, _ := res(1)["error"].(map[string]any); res(1)["status"] != 400.0 || e["field"] != "flow_key" {
		t.Errorf("item with an invalid flow key: %v, want 400 naming flow_key", res(1))
	}
	if ev, _ := res(2)["event"].(map[string]any); res(2)["status"] != 201.0 || ev == nil {
		t.Errorf("item without a flow key: %v", res(2))
	} else if _, ok := ev["flow_key"]; ok {
		t.Errorf("item without a flow key shows one: %v", ev)
	}
	if g := obj(t, b.do(t, http.MethodGet, "/v1/events/shop/k1", nil)); g["flow_key"] != "tenant:1" {
		t.Errorf("GET k1 flow_key = %v, want tenant:1", g["flow_key"])
	}
	wantStatus(t, b.do(t, http.MethodGet, "/v1/events/shop/k2", nil), http.StatusNotFound)
}

// TestFlowKeySearch: a search result shows an event's flow key as its GET
// does, and leaves it out of an event without one.
func TestFlowKeySearch(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	admin := bearer(adminToken)
	for id, key := range map[string]string{"with": "tenant:1", "without": ""} {
		body := map[string]any{"app": "shop", "id": id, "url": "https://example.com/shop", "delay": "1m"}
		if key != "" {
			body["flow_key"] = key
		}
		wantStatus(t, tn.do(t, http.MethodPost, "/v1/events", body, admin...), http.StatusCreated)
		ev, err := tn.sched.Get(t.Context(), "shop", id)
		if err != nil {
			t.Fatal(err)
		}
		tn.archive.add(ev)
	}
	page := obj(t, tn.do(t, http.MethodGet, "/v1/events?app=shop", nil, admin...))
	events, _ := page["events"].([]any)
	if len(events) != 2 {
		t.Fatalf("search found %d events, want 2: %v", len(events), page)
	}
	for _, e := range events {
		found, _ := e.(map[string]any)
		id, _ := found["id"].(string)
		got := obj(t, tn.do(t, http.MethodGet, "/v1/events/shop/"+id, nil, admin...))
		gk, inGet := got["flow_key"]
		sk, inSearch := found["flow_key"]
		if inGet != inSearch || gk != sk {
			t.Errorf("%s: search flow_key %v (present %v), GET %v (present %v)", id, sk, inSearch, gk, inGet)
		}
		want := map[string]any{"with": "tenant:1", "without": nil}[id]
		if sk != want {
			t.Errorf("%s: search flow_key %v, want %v", id, sk, want)
		}
	}
}
