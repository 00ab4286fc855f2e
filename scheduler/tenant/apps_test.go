package tenant_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

type appsBundle struct {
	apps  *tenant.Apps
	store *redisstore.Store
	mr    *miniredis.Miniredis
	clock *scheduler.ManualClock
}

func (b *appsBundle) advance(d time.Duration) {
	b.clock.Advance(d)
}

func setupApps(t *testing.T) *appsBundle {
	t.Helper()
	st, mr := storetest.Miniredis(t, redisstore.Config{Namespace: "t", Shards: 1})
	clock := scheduler.NewManualClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	return &appsBundle{apps: tenant.NewApps(st, clock), store: st, mr: mr, clock: clock}
}

func (b *appsBundle) create(t *testing.T, name string) tenant.Credentials {
	t.Helper()
	_, cr, err := b.apps.Create(context.Background(), name)
	if err != nil {
		t.Fatalf("Create %s: %v", name, err)
	}
	return cr
}

// authAs asserts that key authenticates as app ("" : is refused).
func (b *appsBundle) authAs(t *testing.T, key, app string) {
	t.Helper()
	got, err := b.apps.Authenticate(context.Background(), key)
	switch {
	case app == "" && !errors.Is(err, tenant.ErrUnauthorized):
		t.Fatalf("key accepted (as %v, err %v), want ErrUnauthorized", got, err)
	case app != "" && (err != nil || got.Name != app):
		t.Fatalf("key: got %v, %v; want application %s", got, err, app)
	}
}

func TestAppCredentialsFormat(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	cr := b.create(t, "shop")
	key, ok := strings.CutPrefix(cr.APIKey, "csk_")
	if raw, err := base64.RawURLEncoding.DecodeString(key); !ok || err != nil || len(raw) < 32 {
		t.Fatalf("API key %q: want csk_ + base64url of >= 32 bytes", cr.APIKey)
	}
	sec, ok := strings.CutPrefix(cr.SigningSecret, "whsec_")
	if raw, err := base64.StdEncoding.DecodeString(sec); !ok || err != nil || len(raw) < 24 {
		t.Fatalf("signing secret: want whsec_ + base64 of >= 24 bytes")
	}
	if !strings.HasPrefix(cr.JWTSecret, "csj_") || len(cr.JWTSecret) < 40 {
		t.Fatalf("JWT secret: want csj_ + 32 random bytes")
	}
	if cr.JWTSecret == cr.SigningSecret[6:] || cr.APIKey == cr.JWTSecret {
		t.Fatal("credentials are not independent")
	}
	other := b.create(t, "billing")
	if other.APIKey == cr.APIKey || other.SigningSecret == cr.SigningSecret {
		t.Fatal("two applications got the same credentials")
	}

	// The record keeps only the key's hash; secrets print masked.
	app, err := b.apps.Get(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if app.Keys[0].Hash != tenant.HashKey(cr.APIKey) || strings.Contains(app.Keys[0].Hash, key) {
		t.Fatalf("stored key = %+v", app.Keys[0])
	}
	if !strings.HasPrefix(app.Keys[0].Hint, "csk_…") || len(app.Keys[0].Hint) > 12 {
		t.Fatalf("key hint %q shows too much", app.Keys[0].Hint)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("app", "app", app, "secret", app.SigningSecrets[0])
	j, _ := json.Marshal(app)
	for _, shown := range []string{fmt.Sprint(app), fmt.Sprintf("%+v", app), fmt.Sprintf("%#v", app), logged.String(), string(j)} {
		for _, secret := range []string{cr.APIKey, sec, cr.SigningSecret, cr.JWTSecret} {
			if strings.Contains(shown, secret) {
				t.Fatalf("a secret shows in %q", shown)
			}
		}
	}
	if trimmed := strings.TrimRight(sec, "="); app.SigningSecrets[0].Masked() != "whsec_…"+trimmed[len(trimmed)-4:] {
		t.Fatalf("masked signing secret = %q", app.SigningSecrets[0].Masked())
	}

	if _, _, err := b.apps.Create(context.Background(), "shop"); !errors.Is(err, tenant.ErrAppExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	for _, bad := range []string{"", "has space", "a/b", strings.Repeat("x", 65)} {
		if _, _, err := b.apps.Create(context.Background(), bad); !errors.Is(err, scheduler.ErrInvalid) {
			t.Fatalf("Create(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestAuthenticateKey(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	shop := b.create(t, "shop")
	billing := b.create(t, "billing")
	b.authAs(t, shop.APIKey, "shop")
	b.authAs(t, billing.APIKey, "billing")
	for _, bad := range []string{"", "csk_", "csk_nope", shop.APIKey + "x", shop.APIKey[:len(shop.APIKey)-1],
		strings.ToUpper(shop.APIKey), "Bearer " + shop.APIKey, tenant.HashKey(shop.APIKey), shop.JWTSecret, shop.SigningSecret} {
		b.authAs(t, bad, "")
	}
}

func TestRotateRevokesAtOnce(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	old := b.create(t, "shop")
	app, cr, err := b.apps.Rotate(context.Background(), "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if cr.APIKey == old.APIKey || cr.JWTSecret == old.JWTSecret || cr.SigningSecret != "" {
		t.Fatalf("rotate returned %+v", cr)
	}
	if len(app.Keys) != 1 || len(app.JWTSecrets) != 1 || len(app.SigningSecrets) != 1 {
		t.Fatalf("after rotation without grace: %d keys, %d JWT secrets, %d signing secrets", len(app.Keys), len(app.JWTSecrets), len(app.SigningSecrets))
	}
	b.authAs(t, old.APIKey, "")
	b.authAs(t, cr.APIKey, "shop")
	if _, _, err := b.apps.Rotate(context.Background(), "nope", 0); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Fatalf("rotate of an unknown app: %v", err)
	}
	for _, g := range []time.Duration{-time.Second, tenant.MaxGrace + time.Second} {
		if _, _, err := b.apps.Rotate(context.Background(), "shop", g); !errors.Is(err, scheduler.ErrInvalid) {
			t.Fatalf("rotate with grace %s: %v", g, err)
		}
	}
}

func TestRotateWithGrace(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	first := b.create(t, "shop")
	_, second, err := b.apps.Rotate(context.Background(), "shop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b.authAs(t, first.APIKey, "shop")
	b.authAs(t, second.APIKey, "shop")
	b.advance(59 * time.Minute)
	b.authAs(t, first.APIKey, "shop")
	// A second rotation inside the grace keeps the first key's earlier end.
	_, third, err := b.apps.Rotate(context.Background(), "shop", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b.advance(time.Minute)
	b.authAs(t, first.APIKey, "")
	b.authAs(t, second.APIKey, "shop")
	b.authAs(t, third.APIKey, "shop")
	b.advance(2 * time.Hour)
	b.authAs(t, second.APIKey, "")
	b.authAs(t, third.APIKey, "shop")
	// The next rotation drops what expired, from the record and the index.
	app, fourth, err := b.apps.Rotate(context.Background(), "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Keys) != 1 || app.Keys[0].Hash != tenant.HashKey(fourth.APIKey) {
		t.Fatalf("keys after the last rotation: %+v", app.Keys)
	}
	if _, err := b.store.AppByKeyHash(context.Background(), tenant.HashKey(second.APIKey)); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Fatalf("an expired key stays indexed: %v", err)
	}
}

func TestRotateConcurrently(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	b.create(t, "shop")
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, cr, err := b.apps.Rotate(context.Background(), "shop", time.Hour)
			if err != nil {
				t.Errorf("rotate: %v", err)
			}
			keys[i] = cr.APIKey
		}()
	}
	wg.Wait()
	// No rotation was lost: every key made works (all within the grace).
	for _, k := range keys {
		b.authAs(t, k, "shop")
	}
	app, _ := b.apps.Get(context.Background(), "shop")
	if app.Revision != 9 {
		t.Fatalf("revision = %d, want 9 (create + 8 rotations)", app.Revision)
	}
}

func TestRotateSecret(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	ctx := context.Background()
	first := b.create(t, "shop")
	keys, err := b.apps.SigningKeys(ctx, "shop")
	if err != nil || len(keys) != 1 {
		t.Fatalf("SigningKeys = %d keys, %v", len(keys), err)
	}
	_, cr, err := b.apps.RotateSecret(ctx, "shop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cr.APIKey != "" || cr.SigningSecret == "" || cr.SigningSecret == first.SigningSecret {
		t.Fatalf("RotateSecret returned %+v", cr)
	}
	b.authAs(t, first.APIKey, "shop") // the key is not touched
	keys, _ = b.apps.SigningKeys(ctx, "shop")
	want0, _ := tenant.SigningKey(cr.SigningSecret)
	want1, _ := tenant.SigningKey(first.SigningSecret)
	if len(keys) != 2 || string(keys[0]) != string(want0) || string(keys[1]) != string(want1) {
		t.Fatalf("during the grace: %d keys, want new then old", len(keys))
	}
	b.advance(time.Hour)
	if keys, _ = b.apps.SigningKeys(ctx, "shop"); len(keys) != 1 || string(keys[0]) != string(want0) {
		t.Fatalf("after the grace: %d keys, want the new one", len(keys))
	}
	if keys, err := b.apps.SigningKeys(ctx, "unregistered"); err != nil || keys != nil {
		t.Fatalf("SigningKeys of an unregistered app = %v, %v; want none", keys, err)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                       "",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": "whsec_…LaSw",
		"csk_abcdefghijklmnop":                   "csk_…mnop",
		"short":                                  "…",
		"whsec_abc":                              "whsec_…",
		"no-prefix-but-long-value":               "…alue",
	} {
		if got := tenant.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
