package appcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

// appsEnv is a miniredis the apps command talks to, and a view of the same
// namespace to check what the command did.
type appsEnv struct {
	url  string
	apps *tenant.Apps
}

func setupAppsCLI(t *testing.T) *appsEnv {
	t.Helper()
	mr := miniredis.RunT(t)
	t.Setenv("CASSATA_REDIS_URL", "redis://"+mr.Addr())
	t.Setenv("CASSATA_NAMESPACE", "clitest")
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	st, err := redisstore.New(context.Background(), rdb, redisstore.Config{Namespace: "clitest"})
	if err != nil {
		t.Fatal(err)
	}
	return &appsEnv{url: "redis://" + mr.Addr(), apps: tenant.NewApps(st, nil)}
}

// cli runs "cassata apps args..." and returns its stdout.
func (e *appsEnv) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, &out)
	return out.String(), err
}

func (e *appsEnv) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.cli(t, args...)
	if err != nil {
		t.Fatalf("cassata apps %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func (e *appsEnv) authAs(t *testing.T, key, want string) {
	t.Helper()
	app, err := e.apps.Authenticate(context.Background(), key)
	if want == "" {
		if !errors.Is(err, tenant.ErrUnauthorized) {
			t.Fatalf("key accepted (%v, %v), want refused", app, err)
		}
		return
	}
	if err != nil || app.Name != want {
		t.Fatalf("key: %v, %v; want %s", app, err, want)
	}
}

func TestAppsCreateListRotate(t *testing.T) {
	e := setupAppsCLI(t)
	out := e.mustCLI(t, "create", "shop")
	key := lastLine(out)
	if !strings.HasPrefix(key, "csk_") || strings.ContainsAny(key, " \t:") {
		t.Fatalf("the last line is not the key alone: %q\n%s", key, out)
	}
	e.authAs(t, key, "shop")
	signing := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "whsec_") {
			signing = f
		}
	}
	if signing == "" {
		t.Fatalf("create does not show the signing secret:\n%s", out)
	}

	out = e.mustCLI(t, "create", "billing", "--json")
	var created map[string]string
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("--json: %v: %s", err, out)
	}
	if created["app"] != "billing" || !strings.HasPrefix(created["api_key"], "csk_") || !strings.HasPrefix(created["signing_secret"], "whsec_") {
		t.Fatalf("--json: %s", out)
	}
	e.authAs(t, created["api_key"], "billing")

	if _, err := e.cli(t, "create", "shop"); err == nil {
		t.Fatal("a second create of shop succeeded")
	}
	if _, err := e.cli(t, "create", "bad name"); err == nil {
		t.Fatal("create with an invalid name succeeded")
	}

	// list shows both, never a key or an unmasked secret.
	for _, args := range [][]string{{"list"}, {"list", "--json"}} {
		out = e.mustCLI(t, args...)
		if !strings.Contains(out, "shop") || !strings.Contains(out, "billing") {
			t.Fatalf("%v: %s", args, out)
		}
		for _, secret := range []string{key, created["api_key"], signing, signing[6:], created["signing_secret"][6:], created["jwt_secret"]} {
			if strings.Contains(out, secret) {
				t.Fatalf("%v shows a secret:\n%s", args, out)
			}
		}
		if !strings.Contains(out, tenant.Mask(signing)) || !strings.Contains(out, tenant.Mask(key)) {
			t.Fatalf("%v lacks the masked forms:\n%s", args, out)
		}
	}
	if out := e.mustCLI(t, "list", "--json"); !json.Valid([]byte(out)) {
		t.Fatalf("list --json is not JSON: %s", out)
	}

	// rotate: the old key is refused at once.
	out = e.mustCLI(t, "rotate", "shop")
	second := lastLine(out)
	if !strings.HasPrefix(second, "csk_") || second == key {
		t.Fatalf("rotate: %s", out)
	}
	e.authAs(t, key, "")
	e.authAs(t, second, "shop")

	// rotate --grace: both work until it ends (flags may come before NAME).
	out = e.mustCLI(t, "rotate", "--grace", "1h", "shop", "--json")
	var rotated map[string]string
	if err := json.Unmarshal([]byte(out), &rotated); err != nil || rotated["app"] != "shop" {
		t.Fatalf("rotate --json: %s", out)
	}
	e.authAs(t, second, "shop")
	e.authAs(t, rotated["api_key"], "shop")
	app, _ := e.apps.Get(context.Background(), "shop")
	if exp := app.Keys[1].ExpiresAt; exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(time.Hour)) {
		t.Fatalf("the old key ends at %s, want in an hour", exp)
	}

	// rotate-secret: a new signing secret; during the default grace both sign.
	out = e.mustCLI(t, "rotate-secret", "shop")
	newSecret := lastLine(out)
	if !strings.HasPrefix(newSecret, "whsec_") || newSecret == signing {
		t.Fatalf("rotate-secret: %s", out)
	}
	keys, _ := e.apps.SigningKeys(context.Background(), "shop")
	if len(keys) != 2 {
		t.Fatalf("after rotate-secret: %d signing keys, want 2 (default grace 24h)", len(keys))
	}
	e.mustCLI(t, "rotate-secret", "shop", "--grace=0")
	if keys, _ := e.apps.SigningKeys(context.Background(), "shop"); len(keys) != 1 {
		t.Fatalf("after rotate-secret --grace=0: %d signing keys, want 1", len(keys))
	}
}

func TestAppsCLIErrors(t *testing.T) {
	e := setupAppsCLI(t)
	for _, args := range [][]string{
		{},
		{"create"},
		{"create", "a", "b"},
		{"rotate"},
		{"rotate", "ghost"},
		{"rotate", "shop", "--grace"},
		{"rotate", "shop", "--grace", "soon"},
		{"list", "--grace", "1h"},
		{"frobnicate"},
	} {
		if _, err := e.cli(t, args...); err == nil {
			t.Errorf("cassata apps %v succeeded", args)
		}
	}
	t.Setenv("CASSATA_REDIS_URL", "")
	if _, err := e.cli(t, "list"); err == nil || !strings.Contains(err.Error(), "CASSATA_REDIS_URL") {
		t.Errorf("without a Redis URL: %v", err)
	}
	if _, err := e.cli(t, "list", "--redis-url", e.url); err != nil {
		t.Errorf("apps list --redis-url: %v", err)
	}
	if _, err := e.cli(t, "rotate", "ghost", "--redis-url", e.url); err == nil {
		t.Errorf("apps rotate ghost succeeded")
	}
}
