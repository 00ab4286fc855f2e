package tenant_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler/tenant"
)

// makeJWT builds a compact JWS by hand: header and claims as given, signed
// with HMAC-SHA256 under secret (no signature when secret is "").
func makeJWT(t *testing.T, header, claims map[string]any, secret string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(header) + "." + enc(claims)
	if secret == "" {
		return signed + "."
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var hs256 = map[string]any{"alg": "HS256", "typ": "JWT"}

func TestAuthenticateJWT(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	shop := b.create(t, "shop")
	billing := b.create(t, "billing")
	now := b.clock.Now()
	exp := now.Add(5 * time.Minute).Unix()
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		claims, _ := json.Marshal(map[string]any{"app": "billing", "exp": exp})
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + parts[2]
	}
	valid := makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret)
	tests := []struct {
		name  string
		token string
		want  string // application; "" means refused
	}{
		{"valid, app claim", valid, "shop"},
		{"valid, sub claim", makeJWT(t, hs256, map[string]any{"sub": "shop", "exp": exp}, shop.JWTSecret), "shop"},
		{"valid, no typ", makeJWT(t, map[string]any{"alg": "HS256"}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), "shop"},
		{"valid, iat and nbf in the past", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp, "iat": now.Unix() - 10, "nbf": now.Unix() - 10}, shop.JWTSecret), "shop"},
		{"expired inside the leeway", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": now.Add(-10 * time.Second).Unix()}, shop.JWTSecret), "shop"},
		{"expired", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": now.Add(-time.Minute).Unix()}, shop.JWTSecret), ""},
		{"no exp", makeJWT(t, hs256, map[string]any{"app": "shop"}, shop.JWTSecret), ""},
		{"exp not a number", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": "tomorrow"}, shop.JWTSecret), ""},
		{"not yet valid", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp, "nbf": now.Add(time.Minute).Unix()}, shop.JWTSecret), ""},
		{"issued in the future", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp, "iat": now.Add(time.Minute).Unix()}, shop.JWTSecret), ""},
		{"alg none", makeJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, map[string]any{"app": "shop", "exp": exp}, ""), ""},
		{"alg none with a signature", makeJWT(t, map[string]any{"alg": "none"}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), ""},
		{"alg RS256 (HMAC-signed: the key confusion attack)", makeJWT(t, map[string]any{"alg": "RS256"}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), ""},
		{"alg HS512", makeJWT(t, map[string]any{"alg": "HS512"}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), ""},
		{"alg hs256 in lower case", makeJWT(t, map[string]any{"alg": "hs256"}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), ""},
		{"crit header", makeJWT(t, map[string]any{"alg": "HS256", "crit": []string{"exp"}}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), ""},
		{"typ not JWT", makeJWT(t, map[string]any{"alg": "HS256", "typ": "at+jwt+x"}, map[string]any{"app": "shop", "exp": exp}, shop.JWTSecret), ""},
		{"wrong secret", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp}, "csj_not-the-secret"), ""},
		{"signed with the signing secret", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp}, shop.SigningSecret), ""},
		{"signed with the API key", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp}, shop.APIKey), ""},
		{"other app's secret, claiming shop", makeJWT(t, hs256, map[string]any{"app": "shop", "exp": exp}, billing.JWTSecret), ""},
		{"shop's secret, claiming billing", makeJWT(t, hs256, map[string]any{"app": "billing", "exp": exp}, shop.JWTSecret), ""},
		{"claims swapped after signing", tamper(valid), ""},
		{"app and sub disagree", makeJWT(t, hs256, map[string]any{"app": "shop", "sub": "billing", "exp": exp}, shop.JWTSecret), ""},
		{"unknown app", makeJWT(t, hs256, map[string]any{"app": "ghost", "exp": exp}, shop.JWTSecret), ""},
		{"no app", makeJWT(t, hs256, map[string]any{"exp": exp}, shop.JWTSecret), ""},
		{"signature padded", valid + "=", ""},
		{"signature cut", valid[:len(valid)-2], ""},
		{"two parts", strings.Join(strings.Split(valid, ".")[:2], "."), ""},
		{"four parts", valid + ".x", ""},
		{"garbage", "eyJ.eyJ.eyJ", ""},
		{"huge", valid + strings.Repeat("A", 10000), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.apps.AuthenticateJWT(context.Background(), tt.token, tenant.JWTPolicy{})
			if tt.want == "" {
				if !errors.Is(err, tenant.ErrUnauthorized) {
					t.Fatalf("accepted as %v (err %v), want ErrUnauthorized", got, err)
				}
				return
			}
			if err != nil || got.Name != tt.want {
				t.Fatalf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// TestJWTLifetime: a genuine token valid for longer than the policy allows
// (exp - iat, or exp - now without iat) is refused and says why; a forged
// one learns nothing.
func TestJWTLifetime(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	shop := b.create(t, "shop")
	now := b.clock.Now()
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	day := 24 * time.Hour
	tests := []struct {
		name   string
		claims map[string]any
		policy tenant.JWTPolicy
		reason string // "" : accepted
	}{
		{"an hour, no iat", map[string]any{"exp": at(time.Hour)}, tenant.JWTPolicy{}, ""},
		{"a day, no iat", map[string]any{"exp": at(day)}, tenant.JWTPolicy{}, ""},
		{"a day and a minute, no iat", map[string]any{"exp": at(day + time.Minute)}, tenant.JWTPolicy{}, "longer than the 24h0m0s allowed"},
		{"ten years, no iat", map[string]any{"exp": at(10 * 365 * day)}, tenant.JWTPolicy{}, "longer than"},
		{"a day since iat", map[string]any{"iat": at(-time.Hour), "exp": at(day - time.Hour)}, tenant.JWTPolicy{}, ""},
		{"a day and a second since iat", map[string]any{"iat": at(-time.Hour), "exp": at(day - time.Hour + time.Second)}, tenant.JWTPolicy{}, "lives 24h0m1s"},
		{"a long-ago iat does not stretch the cap", map[string]any{"iat": at(-400 * day), "exp": at(time.Hour)}, tenant.JWTPolicy{}, "longer than"},
		{"two days under a three-day cap", map[string]any{"exp": at(2 * day)}, tenant.JWTPolicy{MaxLifetime: 3 * day}, ""},
		{"an hour under a 30m cap", map[string]any{"iat": now.Unix(), "exp": at(time.Hour)}, tenant.JWTPolicy{MaxLifetime: 30 * time.Minute}, "longer than the 30m0s allowed"},
		{"expired says so", map[string]any{"exp": at(-time.Hour)}, tenant.JWTPolicy{}, "expired"},
		{"iat in the future says so", map[string]any{"iat": at(time.Hour), "exp": at(2 * time.Hour)}, tenant.JWTPolicy{}, "issued in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.claims["app"] = "shop"
			got, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, tt.claims, shop.JWTSecret), tt.policy)
			if tt.reason == "" {
				if err != nil || got.Name != "shop" {
					t.Fatalf("got %v, %v; want shop", got, err)
				}
				return
			}
			var te *tenant.TokenError
			if !errors.Is(err, tenant.ErrUnauthorized) || !errors.As(err, &te) || !strings.Contains(te.Reason, tt.reason) {
				t.Fatalf("got %v, %v; want a TokenError saying %q", got, err, tt.reason)
			}
		})
	}
	// A forged token with a distant exp is refused without a reason.
	forged := makeJWT(t, hs256, map[string]any{"app": "shop", "exp": at(10 * 365 * day)}, "csj_guess")
	_, err := b.apps.AuthenticateJWT(context.Background(), forged, tenant.JWTPolicy{})
	var te *tenant.TokenError
	if !errors.Is(err, tenant.ErrUnauthorized) || errors.As(err, &te) {
		t.Fatalf("forged token: %v; want the bare ErrUnauthorized", err)
	}
}

func TestJWTSecretRotation(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	old := b.create(t, "shop")
	claims := func() map[string]any {
		return map[string]any{"app": "shop", "exp": b.clock.Now().Add(time.Hour).Unix()}
	}
	_, cr, err := b.apps.Rotate(context.Background(), "shop", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{old.JWTSecret, cr.JWTSecret} {
		if _, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, claims(), secret), tenant.JWTPolicy{}); err != nil {
			t.Fatalf("during the grace: %v", err)
		}
	}
	b.advance(10 * time.Minute)
	if _, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, claims(), old.JWTSecret), tenant.JWTPolicy{}); !errors.Is(err, tenant.ErrUnauthorized) {
		t.Fatalf("old JWT secret after the grace: %v", err)
	}
	if _, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, claims(), cr.JWTSecret), tenant.JWTPolicy{}); err != nil {
		t.Fatalf("new JWT secret: %v", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]bool{"eyJa.eyJb.c": true, "csk_abc": false, "a.b.c": false, "eyJa.b": false} {
		if got := tenant.LooksLikeJWT(tok); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", tok, got)
		}
	}
}
