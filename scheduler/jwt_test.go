package scheduler_test

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

	"github.com/cassata/cassata/scheduler"
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
			got, err := b.apps.AuthenticateJWT(context.Background(), tt.token)
			if tt.want == "" {
				if !errors.Is(err, scheduler.ErrUnauthorized) {
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
		if _, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, claims(), secret)); err != nil {
			t.Fatalf("during the grace: %v", err)
		}
	}
	b.advance(10 * time.Minute)
	if _, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, claims(), old.JWTSecret)); !errors.Is(err, scheduler.ErrUnauthorized) {
		t.Fatalf("old JWT secret after the grace: %v", err)
	}
	if _, err := b.apps.AuthenticateJWT(context.Background(), makeJWT(t, hs256, claims(), cr.JWTSecret)); err != nil {
		t.Fatalf("new JWT secret: %v", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]bool{"eyJa.eyJb.c": true, "csk_abc": false, "a.b.c": false, "eyJa.b": false} {
		if got := scheduler.LooksLikeJWT(tok); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", tok, got)
		}
	}
}
