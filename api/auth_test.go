package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler/tenant"
)

// TestJWTLifetimeOverHTTP: a JWT valid for longer than the configured
// maximum lifetime is 401 with a message saying so; within it, accepted.
func TestJWTLifetimeOverHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		policy  tenant.JWTPolicy
		claims  func(now time.Time) map[string]any
		want    int
		message string // in error.message when refused
	}{
		{"default cap: an hour", tenant.JWTPolicy{},
			func(now time.Time) map[string]any { return map[string]any{"exp": now.Add(time.Hour).Unix()} }, 201, ""},
		{"default cap: a year ahead", tenant.JWTPolicy{},
			func(now time.Time) map[string]any { return map[string]any{"exp": now.AddDate(1, 0, 0).Unix()} }, 401, "longer than the 24h0m0s allowed"},
		{"default cap: iat to exp of 48h", tenant.JWTPolicy{},
			func(now time.Time) map[string]any {
				return map[string]any{"iat": now.Unix(), "exp": now.Add(48 * time.Hour).Unix()}
			}, 401, "lives 48h0m0s"},
		{"a 72h cap takes 48h", tenant.JWTPolicy{MaxLifetime: 72 * time.Hour},
			func(now time.Time) map[string]any {
				return map[string]any{"iat": now.Unix(), "exp": now.Add(48 * time.Hour).Unix()}
			}, 201, ""},
		{"a 10m cap refuses an hour", tenant.JWTPolicy{MaxLifetime: 10 * time.Minute},
			func(now time.Time) map[string]any { return map[string]any{"exp": now.Add(time.Hour).Unix()} }, 401, "longer than the 10m0s allowed"},
		{"expired says so", tenant.JWTPolicy{},
			func(now time.Time) map[string]any { return map[string]any{"exp": now.Add(-time.Hour).Unix()} }, 401, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tn := setupTenants(t, tenantOpts{jwt: tt.policy})
			claims := tt.claims(tn.clock.Now())
			claims["app"] = "shop"
			tok := signJWT("HS256", claims, tn.creds["shop"].JWTSecret)
			r := tn.do(t, "POST", "/v1/events", map[string]any{"app": "shop", "id": "j", "url": "https://example.com", "delay": "1h"}, bearer(tok)...)
			if tt.want == 201 {
				wantStatus(t, r, 201)
				return
			}
			e := wantError(t, r, 401, "")
			if msg, _ := e["message"].(string); !strings.Contains(msg, tt.message) {
				t.Fatalf("message %q does not say %q", msg, tt.message)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}
