package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

const adminToken = "admin-token-for-tests"

// scopeArchive is a stand-in archive whose search returns every event it
// was told about that matches the query's application: an unscoped search
// would show every tenant's events.
type scopeArchive struct {
	mu     sync.Mutex
	events []*scheduler.Event
}

func (a *scopeArchive) add(ev *scheduler.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
}

func (a *scopeArchive) Write(context.Context, []scheduler.Record) error { return nil }
func (a *scopeArchive) Counts(context.Context) (map[scheduler.Status]int64, error) {
	return map[scheduler.Status]int64{}, nil
}
func (a *scopeArchive) PerMinute(context.Context, time.Time) ([]scheduler.MinuteStat, error) {
	return nil, nil
}
func (a *scopeArchive) Get(context.Context, string, string) (*scheduler.Event, error) {
	return nil, scheduler.ErrNotFound
}
func (a *scopeArchive) Ping(context.Context) error { return nil }
func (a *scopeArchive) Search(_ context.Context, q scheduler.SearchQuery) (scheduler.SearchPage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*scheduler.Event
	for _, ev := range a.events {
		if q.App == "" || ev.App == q.App {
			c := *ev
			out = append(out, &c)
		}
	}
	return scheduler.SearchPage{Events: out}, nil
}

// tenants is a bundle with applications and auth on.
type tenants struct {
	*bundle
	apps    *tenant.Apps
	archive *scopeArchive
	logs    *testproc.Buffer
	creds   map[string]tenant.Credentials
}

type tenantOpts struct {
	rateLimit float64
	rateBurst int
	jwt       tenant.JWTPolicy
}

// setupTenants runs the API with CASSATA_AUTH=on semantics (KeyAuth), an
// admin token and two applications, shop and billing.
func setupTenants(t *testing.T, o tenantOpts) *tenants {
	t.Helper()
	store, mr := storetest.Miniredis(t, redisstore.Config{Namespace: "apitest"})
	clock := &fakeClock{now: time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)}
	arch := &scopeArchive{}
	sched := scheduler.New(store, scheduler.Config{Clock: clock, Archive: arch})
	apps := tenant.NewApps(store, clock)
	logs := &testproc.Buffer{}
	reg := prometheus.NewRegistry()
	a := api.New(api.Config{Scheduler: sched, Gatherer: reg, Metrics: scheduler.NewMetrics(reg),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Apps:   apps, RateLimit: o.rateLimit, RateBurst: o.rateBurst, Clock: clock})
	b := &bundle{mr: mr, rdb: store.Client(), store: store, sched: sched, clock: clock, reg: reg,
		handler: a.Engine(api.NewKeyAuth(apps, api.KeyAuthConfig{AdminToken: adminToken, JWT: o.jwt}))}
	tn := &tenants{bundle: b, apps: apps, archive: arch, logs: logs, creds: map[string]tenant.Credentials{}}
	for _, name := range []string{"shop", "billing"} {
		_, cr, err := apps.Create(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		tn.creds[name] = cr
	}
	return tn
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func (tn *tenants) key(app string) []string { return bearer(tn.creds[app].APIKey) }

// seed creates an event as the admin and tells the archive about it.
func (tn *tenants) seed(t *testing.T, app, id, delay string) {
	t.Helper()
	wantStatus(t, tn.do(t, http.MethodPost, "/v1/events", map[string]any{
		"app": app, "id": id, "url": "https://example.com/" + app, "delay": delay}, bearer(adminToken)...), http.StatusCreated)
	ev, err := tn.sched.Get(context.Background(), app, id)
	if err != nil {
		t.Fatal(err)
	}
	tn.archive.add(ev)
}

func (tn *tenants) status(t *testing.T, app, id string) scheduler.Status {
	t.Helper()
	ev, err := tn.sched.Get(context.Background(), app, id)
	if err != nil {
		return ""
	}
	return ev.Status
}

// TestTenantIsolation runs shop's key against billing's events on every
// route: each is refused with 403 and changes nothing, while the same
// request for shop's own events goes through.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	tn.seed(t, "billing", "failed", "0s")
	finish(t, tn.bundle, "billing", "failed", scheduler.StatusFailed, 400)
	tn.seed(t, "billing", "b1", "10h")
	tn.seed(t, "shop", "s1", "10h")
	tn.seed(t, "shop", "s2", "10h")

	v1 := func(app, id string) map[string]any {
		return map[string]any{"app": app, "id": id, "url": "https://example.com/x", "delay": "10h"}
	}
	add := func(app, id string) map[string]any {
		return map[string]any{"event-id": id, "application-id": app, "url": "https://example.com/x", "expiry": 4102444800}
	}
	tests := []struct {
		name         string
		method, path string
		body         any
		mine         bool // the request is about shop's own events
		want         int
	}{
		{"v1 create for billing", "POST", "/v1/events", v1("billing", "x1"), false, 403},
		{"v1 create for shop", "POST", "/v1/events", v1("shop", "x2"), true, 201},
		{"v1 get billing's", "GET", "/v1/events/billing/b1", nil, false, 403},
		{"v1 get billing's unknown event", "GET", "/v1/events/billing/nope", nil, false, 403},
		{"v1 get shop's", "GET", "/v1/events/shop/s1", nil, true, 200},
		{"v1 delete billing's", "DELETE", "/v1/events/billing/b1", nil, false, 403},
		{"v1 delete shop's", "DELETE", "/v1/events/shop/s2", nil, true, 200},
		{"v1 retry billing's", "POST", "/v1/events/billing/failed/retry", nil, false, 403},
		{"v1 search billing", "GET", "/v1/events?app=billing", nil, false, 403},
		{"v1 search billing with other filters", "GET", "/v1/events?app=billing&status=FAILED&q=f", nil, false, 403},
		{"v1 search shop", "GET", "/v1/events?app=shop", nil, true, 200},
		{"cassata add for billing", "POST", "/cassata/add", add("billing", "c1"), false, 403},
		{"cassata add (code spelling) for billing", "POST", "/cassata/add/", map[string]any{"eventId": "c2", "application": "billing", "destinationUrl": "https://example.com", "expiry": 4102444800}, false, 403},
		{"cassata add for shop", "POST", "/cassata/add", add("shop", "c3"), true, 200},
		{"cassata delete billing's (GET)", "GET", "/cassata/delete/billing/b1", nil, false, 403},
		{"cassata delete billing's (DELETE)", "DELETE", "/cassata/delete/billing/b1", nil, false, 403},
		{"cassata status billing's", "GET", "/cassata/status/billing/b1", nil, false, 403},
		{"cassata event billing's", "GET", "/cassata/event/billing/b1", nil, false, 403},
		{"cassata status shop's", "GET", "/cassata/status/shop/s1", nil, true, 200},
		{"cassata event shop's", "GET", "/cassata/event/shop/s1", nil, true, 200},
		{"app management", "GET", "/v1/apps", nil, false, 403},
		{"app creation", "POST", "/v1/apps", map[string]any{"name": "evil"}, false, 403},
		{"app rotation of billing", "POST", "/v1/apps/billing/rotate", nil, false, 403},
		{"app rotation of itself", "POST", "/v1/apps/shop/rotate", nil, false, 403},
	}
	for _, tt := range tests {
		r := tn.do(t, tt.method, tt.path, tt.body, tn.key("shop")...)
		if r.code != tt.want {
			t.Errorf("%s: status %d, want %d: %s", tt.name, r.code, tt.want, r.body)
			continue
		}
		if tt.want != 403 {
			continue
		}
		if strings.HasPrefix(tt.path, "/cassata/") {
			if m := obj(t, r); m["status"] != "failed" || m["message"] == "" {
				t.Errorf("%s: 403 body %s lacks the original's status/message", tt.name, r.body)
			}
		} else {
			wantError(t, r, 403, "")
		}
	}
	// Nothing of billing's changed, nothing was created for it.
	if st := tn.status(t, "billing", "b1"); st != scheduler.StatusPending {
		t.Errorf("billing/b1 is %s after shop's attempts, want PENDING", st)
	}
	if st := tn.status(t, "billing", "failed"); st != scheduler.StatusFailed {
		t.Errorf("billing/failed is %s after shop's retry, want FAILED", st)
	}
	for _, id := range []string{"x1", "c1", "c2"} {
		if _, err := tn.sched.Get(context.Background(), "billing", id); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("billing/%s was created by shop's key (%v)", id, err)
		}
	}
	if _, err := tn.apps.Get(context.Background(), "evil"); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Errorf("shop's key created an application")
	}

	// Search without an app filter shows shop's events only.
	r := tn.do(t, "GET", "/v1/events", nil, tn.key("shop")...)
	wantStatus(t, r, 200)
	var page struct{ Events []struct{ App, ID string } }
	_ = json.Unmarshal(r.body, &page)
	if len(page.Events) == 0 {
		t.Fatalf("shop's search found nothing: %s", r.body)
	}
	for _, ev := range page.Events {
		if ev.App != "shop" {
			t.Errorf("shop's unfiltered search shows %s/%s", ev.App, ev.ID)
		}
	}
	// The admin token sees everyone's.
	r = tn.do(t, "GET", "/v1/events", nil, bearer(adminToken)...)
	if !strings.Contains(string(r.body), `"app":"billing"`) || !strings.Contains(string(r.body), `"app":"shop"`) {
		t.Errorf("admin search: %s", r.body)
	}

	// A v1 create by an application may leave its app out: it is the key's.
	r = tn.do(t, "POST", "/v1/events", map[string]any{"id": "implicit", "url": "https://example.com", "delay": "10h"}, tn.key("shop")...)
	wantStatus(t, r, 201)
	if obj(t, r)["app"] != "shop" {
		t.Errorf("create without app: %s", r.body)
	}
}

func TestTenantBatch(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	item := func(app, id string) map[string]any {
		m := map[string]any{"id": id, "url": "https://example.com/x", "delay": "10h"}
		if app != "" {
			m["app"] = app
		}
		return m
	}
	r := tn.do(t, "POST", "/v1/events/batch", map[string]any{"events": []any{
		item("shop", "a"), item("billing", "b"), item("", "c"), item("billing", "d")}}, tn.key("shop")...)
	wantStatus(t, r, 200)
	var res struct {
		Results []struct {
			Status int
			Event  *struct{ App, ID string }
			Error  *struct{ Code, Field string }
		}
	}
	if err := json.Unmarshal(r.body, &res); err != nil || len(res.Results) != 4 {
		t.Fatalf("batch: %s", r.body)
	}
	for i, want := range []int{201, 403, 201, 403} {
		got := res.Results[i]
		if got.Status != want {
			t.Errorf("item %d: status %d, want %d", i, got.Status, want)
		}
		if want == 403 && (got.Error == nil || got.Error.Code != "forbidden" || got.Event != nil) {
			t.Errorf("item %d: %+v", i, got)
		}
	}
	if res.Results[2].Event == nil || res.Results[2].Event.App != "shop" {
		t.Errorf("an item without app is the key's application's: %+v", res.Results[2])
	}
	for _, id := range []string{"b", "d"} {
		if _, err := tn.sched.Get(context.Background(), "billing", id); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("billing/%s created through shop's batch", id)
		}
	}
	// The admin may batch for several applications.
	r = tn.do(t, "POST", "/v1/events/batch", map[string]any{"events": []any{item("shop", "e"), item("billing", "f")}}, bearer(adminToken)...)
	if !strings.Contains(string(r.body), `"status":201,"event":{"app":"shop"`) || !strings.Contains(string(r.body), `"status":201,"event":{"app":"billing"`) {
		t.Errorf("admin batch: %s", r.body)
	}
}

func TestAdminTokenActsOnAll(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	admin := bearer(adminToken)
	for _, app := range []string{"shop", "billing", "unregistered"} {
		wantStatus(t, tn.do(t, "POST", "/v1/events", map[string]any{"app": app, "id": "e1", "url": "https://example.com", "delay": "0s"}, admin...), 201)
		wantStatus(t, tn.do(t, "GET", "/v1/events/"+app+"/e1", nil, admin...), 200)
		wantStatus(t, tn.do(t, "GET", "/cassata/status/"+app+"/e1", nil, admin...), 200)
		wantStatus(t, tn.do(t, "GET", "/cassata/event/"+app+"/e1", nil, admin...), 200)
		wantStatus(t, tn.do(t, "GET", "/v1/events?app="+app, nil, admin...), 200)
		finish(t, tn.bundle, app, "e1", scheduler.StatusFailed, 400)
		wantStatus(t, tn.do(t, "POST", "/v1/events/"+app+"/e1/retry", nil, admin...), 200)
		wantStatus(t, tn.do(t, "DELETE", "/v1/events/"+app+"/e1", nil, admin...), 200)
		wantStatus(t, tn.do(t, "POST", "/cassata/add", map[string]any{"event-id": "e2", "application-id": app, "url": "https://example.com", "expiry": 4102444800}, admin...), 200)
		wantStatus(t, tn.do(t, "DELETE", "/cassata/delete/"+app+"/e2", nil, admin...), 200)
	}
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	ev := map[string]any{"app": "shop", "id": "e", "url": "https://example.com", "delay": "1h"}
	for name, hdr := range map[string][]string{
		"no header":         nil,
		"empty bearer":      {"Authorization", "Bearer "},
		"basic":             {"Authorization", "Basic " + tn.creds["shop"].APIKey},
		"made-up key":       bearer("csk_" + strings.Repeat("A", 43)),
		"key with a suffix": bearer(tn.creds["shop"].APIKey + "A"),
		"admin prefix":      bearer(adminToken[:len(adminToken)-1]),
		"jwt secret":        bearer(tn.creds["shop"].JWTSecret),
		"signing secret":    bearer(tn.creds["shop"].SigningSecret),
		"garbage jwt":       bearer("eyJhbGciOiJub25lIn0.eyJhcHAiOiJzaG9wIn0."),
	} {
		r := tn.do(t, "POST", "/v1/events", ev, hdr...)
		wantError(t, r, http.StatusUnauthorized, "")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
	}
	if _, err := tn.sched.Get(context.Background(), "shop", "e"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatal("an unauthenticated create was stored")
	}
	wantStatus(t, tn.do(t, "GET", "/healthz", nil), 200)
}

func TestRotationOverHTTP(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	admin := bearer(adminToken)
	get := func(key string) int {
		return tn.do(t, "GET", "/v1/events/shop/none", nil, bearer(key)...).code // 404 once authenticated
	}
	first := tn.creds["shop"].APIKey
	if c := get(first); c != 404 {
		t.Fatalf("first key: %d", c)
	}

	// Without grace the old key is refused at once.
	r := tn.do(t, "POST", "/v1/apps/shop/rotate", nil, admin...)
	wantStatus(t, r, 200)
	var rot api.CredentialsResponse
	_ = json.Unmarshal(r.body, &rot)
	if !strings.HasPrefix(rot.APIKey, "csk_") || !strings.HasPrefix(rot.JWTSecret, "csj_") || rot.SigningSecret != "" || rot.App.Name != "shop" {
		t.Fatalf("rotate response: %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("credentials response is cacheable")
	}
	if c := get(first); c != 401 {
		t.Fatalf("revoked key: %d, want 401", c)
	}
	second := rot.APIKey
	if c := get(second); c != 404 {
		t.Fatalf("new key: %d", c)
	}

	// With grace both work until it ends.
	r = tn.do(t, "POST", "/v1/apps/shop/rotate", map[string]any{"grace": "1h"}, admin...)
	wantStatus(t, r, 200)
	_ = json.Unmarshal(r.body, &rot)
	third := rot.APIKey
	if len(rot.App.Keys) != 2 || rot.App.Keys[1].ExpiresAt == nil || rot.App.Keys[0].ExpiresAt != nil {
		t.Fatalf("keys during the grace: %s", r.body)
	}
	if get(second) != 404 || get(third) != 404 {
		t.Fatal("during the grace both keys must work")
	}
	tn.clock.Advance(59 * time.Minute)
	if get(second) != 404 {
		t.Fatal("old key refused before the grace ended")
	}
	tn.clock.Advance(time.Minute)
	if c := get(second); c != 401 {
		t.Fatalf("old key after the grace: %d, want 401", c)
	}
	if get(third) != 404 {
		t.Fatal("new key refused")
	}
	// billing's key was never touched.
	if c := tn.do(t, "GET", "/v1/events/billing/none", nil, tn.key("billing")...).code; c != 404 {
		t.Fatalf("billing's key after shop's rotations: %d", c)
	}

	for _, tt := range []struct {
		path string
		body any
		want int
	}{
		{"/v1/apps/ghost/rotate", nil, 404},
		{"/v1/apps/shop/rotate", map[string]any{"grace": "soon"}, 400},
		{"/v1/apps/shop/rotate", map[string]any{"grace": "-1h"}, 400},
		{"/v1/apps/shop/rotate", map[string]any{"grace": "9999h"}, 400},
		{"/v1/apps/shop/rotate", "{", 400},
		{"/v1/apps/ghost/rotate-secret", nil, 404},
	} {
		wantError(t, tn.do(t, "POST", tt.path, tt.body, admin...), tt.want, "")
	}
}

func TestAppsAdminAPI(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	admin := bearer(adminToken)
	r := tn.do(t, "POST", "/v1/apps", map[string]any{"name": "newapp"}, admin...)
	wantStatus(t, r, 201)
	var created api.CredentialsResponse
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.APIKey, "csk_") || !strings.HasPrefix(created.SigningSecret, "whsec_") ||
		!strings.HasPrefix(created.JWTSecret, "csj_") || created.App.Name != "newapp" {
		t.Fatalf("create: %s", r.body)
	}
	// The new key works at once, for its own application.
	wantStatus(t, tn.do(t, "POST", "/v1/events", map[string]any{"id": "e", "url": "https://example.com", "delay": "1h"}, bearer(created.APIKey)...), 201)

	wantError(t, tn.do(t, "POST", "/v1/apps", map[string]any{"name": "newapp"}, admin...), 409, "name")
	wantError(t, tn.do(t, "POST", "/v1/apps", map[string]any{"name": "bad name"}, admin...), 400, "name")
	wantError(t, tn.do(t, "POST", "/v1/apps", map[string]any{}, admin...), 400, "name")
	wantError(t, tn.do(t, "GET", "/v1/apps/ghost", nil, admin...), 404, "")

	r = tn.do(t, "POST", "/v1/apps/newapp/rotate-secret", nil, admin...)
	wantStatus(t, r, 200)
	var rotated api.CredentialsResponse
	_ = json.Unmarshal(r.body, &rotated)
	if !strings.HasPrefix(rotated.SigningSecret, "whsec_") || rotated.APIKey != "" || len(rotated.App.SigningSecrets) != 2 {
		t.Fatalf("rotate-secret (default grace: both secrets sign): %s", r.body)
	}

	// Listing and reading show no key and only masked secrets.
	for _, path := range []string{"/v1/apps", "/v1/apps/newapp"} {
		r = tn.do(t, "GET", path, nil, admin...)
		wantStatus(t, r, 200)
		body := string(r.body)
		for name, cr := range tn.creds {
			for _, secret := range []string{cr.APIKey, cr.JWTSecret, cr.SigningSecret, cr.SigningSecret[6:]} {
				if strings.Contains(body, secret) {
					t.Fatalf("GET %s shows a secret of %s: %s", path, name, body)
				}
			}
		}
		for _, secret := range []string{created.APIKey, created.JWTSecret, created.SigningSecret[6:], rotated.SigningSecret[6:], tenant.HashKey(created.APIKey)} {
			if strings.Contains(body, secret) {
				t.Fatalf("GET %s shows a secret: %s", path, body)
			}
		}
		if !strings.Contains(body, tenant.Mask(rotated.SigningSecret)) || !strings.Contains(body, tenant.Mask(created.APIKey)) {
			t.Fatalf("GET %s lacks the masked forms: %s", path, body)
		}
	}
	var list struct{ Apps []api.AppView }
	r = tn.do(t, "GET", "/v1/apps", nil, admin...)
	_ = json.Unmarshal(r.body, &list)
	if len(list.Apps) != 3 || list.Apps[0].Name != "billing" || list.Apps[1].Name != "newapp" || list.Apps[2].Name != "shop" {
		t.Fatalf("list: %s", r.body)
	}

	// Nothing secret reached the log.
	logs := tn.logs.String()
	if !strings.Contains(logs, "application created") {
		t.Fatalf("the log does not record the creation: %s", logs)
	}
	for _, secret := range []string{created.APIKey, created.JWTSecret, created.SigningSecret[6:], rotated.SigningSecret[6:], adminToken} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a secret reached the log: %s", logs)
		}
	}
}

// signJWT makes an HS256 JWT by hand.
func signJWT(alg string, claims map[string]any, secret string) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	s := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestJWTOverHTTP(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	now := tn.clock.Now()
	secret := tn.creds["shop"].JWTSecret
	ev := func(app, id string) map[string]any {
		return map[string]any{"app": app, "id": id, "url": "https://example.com", "delay": "1h"}
	}
	valid := signJWT("HS256", map[string]any{"app": "shop", "exp": now.Add(time.Minute).Unix()}, secret)
	wantStatus(t, tn.do(t, "POST", "/v1/events", ev("shop", "j1"), bearer(valid)...), 201)
	wantStatus(t, tn.do(t, "GET", "/cassata/status/shop/j1", nil, bearer(valid)...), 200)
	wantError(t, tn.do(t, "POST", "/v1/events", ev("billing", "j2"), bearer(valid)...), 403, "app")
	wantError(t, tn.do(t, "GET", "/v1/apps", nil, bearer(valid)...), 403, "")
	sub := signJWT("HS256", map[string]any{"sub": "shop", "exp": now.Add(time.Minute).Unix()}, secret)
	wantStatus(t, tn.do(t, "POST", "/v1/events", ev("shop", "j3"), bearer(sub)...), 201)

	for name, tok := range map[string]string{
		"expired":          signJWT("HS256", map[string]any{"app": "shop", "exp": now.Add(-time.Hour).Unix()}, secret),
		"without exp":      signJWT("HS256", map[string]any{"app": "shop"}, secret),
		"alg HS512":        signJWT("HS512", map[string]any{"app": "shop", "exp": now.Add(time.Minute).Unix()}, secret),
		"alg none":         strings.Join(strings.Split(signJWT("none", map[string]any{"app": "shop", "exp": now.Add(time.Minute).Unix()}, secret), ".")[:2], ".") + ".",
		"wrong secret":     signJWT("HS256", map[string]any{"app": "shop", "exp": now.Add(time.Minute).Unix()}, "csj_guess"),
		"billing's secret": signJWT("HS256", map[string]any{"app": "shop", "exp": now.Add(time.Minute).Unix()}, tn.creds["billing"].JWTSecret),
	} {
		r := tn.do(t, "POST", "/v1/events", ev("shop", "bad"), bearer(tok)...)
		if r.code != 401 {
			t.Errorf("%s: status %d, want 401: %s", name, r.code, r.body)
		}
	}
	// The token expires on the server's clock.
	tn.clock.Advance(2 * time.Minute)
	wantError(t, tn.do(t, "GET", "/v1/events/shop/j1", nil, bearer(valid)...), 401, "")
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{rateLimit: 2, rateBurst: 3})
	get := func(hdr []string) response { return tn.do(t, "GET", "/v1/events/shop/none", nil, hdr...) }
	for i := range 3 {
		if r := get(tn.key("shop")); r.code != 404 {
			t.Fatalf("request %d within the burst: %d", i, r.code)
		}
	}
	r := get(tn.key("shop"))
	wantError(t, r, http.StatusTooManyRequests, "")
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q, want 1", ra)
	}
	// Another application and the admin are not held back by shop.
	wantStatus(t, tn.do(t, "GET", "/v1/events/billing/none", nil, tn.key("billing")...), 404)
	for range 10 {
		wantStatus(t, get(bearer(adminToken)), 404)
	}
	// The Cassata-compatible routes count too.
	wantError(t, tn.do(t, "GET", "/cassata/status/shop/none", nil, tn.key("shop")...), 429, "")
	// Half a second refills one token (2/s).
	tn.clock.Advance(500 * time.Millisecond)
	wantStatus(t, get(tn.key("shop")), 404)
	wantError(t, get(tn.key("shop")), 429, "")
	// Refused credentials never reach the limiter's buckets.
	wantError(t, get(bearer("csk_nope")), 401, "")
}

func TestAuthWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	tn.mr.Close()
	r := tn.do(t, "GET", "/v1/events/shop/x", nil, tn.key("shop")...)
	wantError(t, r, http.StatusServiceUnavailable, "")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
