package redisstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
)

func testAppRecord(name string, now time.Time, hashes ...string) *tenant.App {
	a := &tenant.App{Name: name, CreatedAt: now,
		JWTSecrets:     []tenant.Secret{tenant.NewSecret("csj_jwtsecretjwtsecretjwtsecret", now, time.Time{})},
		SigningSecrets: []tenant.Secret{tenant.NewSecret("whsec_c2lnbmluZ3NlY3JldHNpZ25pbmdzZWNyZXQ=", now, time.Time{})},
	}
	for _, h := range hashes {
		a.Keys = append(a.Keys, tenant.KeyHash{Hash: h, Hint: "csk_…" + h[:4], CreatedAt: now})
	}
	return a
}

func TestAppCreateGetList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	shop := testAppRecord("shop", b.now, "aaaa1111", "bbbb2222")
	shop.Keys[1].ExpiresAt = b.at(time.Hour)
	if err := b.store.CreateApp(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if shop.Revision != 1 {
		t.Fatalf("revision after create = %d, want 1", shop.Revision)
	}
	if err := b.store.CreateApp(ctx, testAppRecord("shop", b.now, "cccc3333")); !errors.Is(err, tenant.ErrAppExists) {
		t.Fatalf("second create: %v, want ErrAppExists", err)
	}
	if _, err := b.store.AppByKeyHash(ctx, "cccc3333"); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Fatalf("a refused create indexed its key: %v", err)
	}
	if err := b.store.CreateApp(ctx, testAppRecord("billing", b.now, "dddd4444")); err != nil {
		t.Fatal(err)
	}

	got, err := b.store.GetApp(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "shop" || !got.CreatedAt.Equal(b.now) || got.Revision != 1 || len(got.Keys) != 2 ||
		got.Keys[0].Hash != "aaaa1111" || !got.Keys[1].ExpiresAt.Equal(b.at(time.Hour)) || !got.Keys[0].ExpiresAt.IsZero() {
		t.Fatalf("GetApp = %+v", got)
	}
	if got.SigningSecrets[0].Reveal() != "whsec_c2lnbmluZ3NlY3JldHNpZ25pbmdzZWNyZXQ=" || got.JWTSecrets[0].Reveal() != "csj_jwtsecretjwtsecretjwtsecret" {
		t.Fatalf("secrets did not round-trip")
	}
	if _, err := b.store.GetApp(ctx, "nope"); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Fatalf("GetApp(nope) = %v", err)
	}
	for _, h := range []string{"aaaa1111", "bbbb2222"} {
		a, err := b.store.AppByKeyHash(ctx, h)
		if err != nil || a.Name != "shop" || a.Revision != 1 {
			t.Fatalf("AppByKeyHash(%s) = %+v, %v", h, a, err)
		}
	}
	list, err := b.store.ListApps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"billing", "shop"}) {
		t.Fatalf("ListApps names = %v", names)
	}

	// Everything lives in the one hash <ns>:apps: one key, one cluster slot.
	for _, k := range b.mr.Keys() {
		if strings.Contains(k, "app") && k != testNS+":apps" {
			t.Errorf("unexpected application key %q", k)
		}
	}
	fields, _ := b.rdb.HKeys(ctx, testNS+":apps").Result()
	slices.Sort(fields)
	want := []string{"app:billing", "app:shop", "key:aaaa1111", "key:bbbb2222", "key:dddd4444", "rev:billing", "rev:shop"}
	if !slices.Equal(fields, want) {
		t.Fatalf("fields of %s:apps = %v, want %v", testNS, fields, want)
	}
}

func TestAppUpdateKeepsIndexInStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.store.CreateApp(ctx, testAppRecord("shop", b.now, "old1", "old2")); err != nil {
		t.Fatal(err)
	}
	a, err := b.store.GetApp(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	stale := *a
	a.Keys = []tenant.KeyHash{{Hash: "new1", CreatedAt: b.now}, a.Keys[1]}
	if err := b.store.UpdateApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Revision != 2 {
		t.Fatalf("revision after update = %d", a.Revision)
	}
	if _, err := b.store.AppByKeyHash(ctx, "old1"); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Fatalf("removed key still indexed: %v", err)
	}
	for _, h := range []string{"new1", "old2"} {
		if got, err := b.store.AppByKeyHash(ctx, h); err != nil || got.Revision != 2 {
			t.Fatalf("AppByKeyHash(%s) = %+v, %v", h, got, err)
		}
	}
	// A write based on a stale read is refused, and changes nothing.
	stale.Keys = nil
	if err := b.store.UpdateApp(ctx, &stale); !errors.Is(err, scheduler.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if _, err := b.store.AppByKeyHash(ctx, "new1"); err != nil {
		t.Fatalf("stale update changed the index: %v", err)
	}
	ghost := testAppRecord("ghost", b.now)
	ghost.Revision = 3
	if err := b.store.UpdateApp(ctx, ghost); !errors.Is(err, tenant.ErrAppNotFound) {
		t.Fatalf("update of a missing application: %v", err)
	}
}

func TestAppStoreUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.store.AppByKeyHash(ctx, "x"); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("AppByKeyHash with Redis down: %v, want ErrUnavailable", err)
	}
	if _, err := b.store.GetApp(ctx, "x"); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("GetApp with Redis down: %v, want ErrUnavailable", err)
	}
}
