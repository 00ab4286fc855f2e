package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
)

// fakeApps lists fixed applications.
type fakeApps struct {
	apps []*tenant.App
	err  error
	now  time.Time
}

func (f *fakeApps) List(context.Context) ([]*tenant.App, error) { return f.apps, f.err }
func (f *fakeApps) Now() time.Time                              { return f.now }

const (
	testAPIKey     = "csk_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6"
	testSigning    = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
	testOldSigning = "whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xkOTk="
	testJWTSecret  = "csj_and0and0and0and0and0and0and0and0and0and0and0"
)

func TestAppsPage(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	fa := &fakeApps{now: now, apps: []*tenant.App{{
		Name: "shop", CreatedAt: now.Add(-time.Hour),
		Keys: []tenant.KeyHash{
			{Hash: tenant.HashKey(testAPIKey), Hint: tenant.Mask(testAPIKey), CreatedAt: now},
			{Hash: "expired", Hint: "csk_…gone", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)},
		},
		SigningSecrets: []tenant.Secret{
			tenant.NewSecret(testSigning, now, time.Time{}),
			tenant.NewSecret(testOldSigning, now.Add(-time.Hour), now.Add(time.Hour)),
		},
		JWTSecrets: []tenant.Secret{tenant.NewSecret(testJWTSecret, now, time.Time{})},
	}}}
	e := setup(t, func(c *Config) { c.Apps = fa })
	e.login()
	r := e.get(e.p + "/apps")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /apps: %d", r.StatusCode)
	}
	for _, secret := range []string{testAPIKey, tenant.HashKey(testAPIKey), testSigning[6:], testOldSigning[6:], testJWTSecret[4:]} {
		if strings.Contains(r.body, secret) {
			t.Fatalf("the Applications page shows a secret:\n%s", r.body)
		}
	}
	for _, shown := range []string{"shop", tenant.Mask(testAPIKey), tenant.Mask(testSigning), tenant.Mask(testOldSigning),
		tenant.Mask(testJWTSecret), "until 2025-03-14 16:00:00Z", `aria-current="page"`, ">Applications</a>"} {
		if !strings.Contains(r.body, shown) {
			t.Errorf("the page lacks %q", shown)
		}
	}
	if strings.Contains(r.body, "csk_…gone") {
		t.Error("an expired key is listed")
	}
	// Every page links to it.
	if r := e.get(e.p + "/"); !strings.Contains(r.body, `href="`+e.p+`/apps"`) {
		t.Error("the navigation has no Applications link")
	}

	fa.err = errors.Join(scheduler.ErrUnavailable)
	if r := e.get(e.p + "/apps"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Redis down: %d", r.StatusCode)
	}
}

func TestAppsPageNeedsLoginAndConfig(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.Apps = &fakeApps{} })
	if r := e.get(e.p + "/apps"); r.StatusCode != http.StatusFound {
		t.Fatalf("GET /apps without a session: %d, want a redirect to the login", r.StatusCode)
	}
	plain := setup(t)
	plain.login()
	if r := plain.get(plain.p + "/apps"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /apps without Config.Apps: %d, want 404", r.StatusCode)
	}
	if r := plain.get(plain.p + "/"); strings.Contains(r.body, ">Applications</a>") {
		t.Error("an Applications link without Config.Apps")
	}
}
