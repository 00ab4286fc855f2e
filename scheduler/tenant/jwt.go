package tenant

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
)

// Bearer JWTs. Publishers that cannot keep a long-lived API key in their
// requests may send a short-lived JWT instead:
//
//	header  {"alg":"HS256","typ":"JWT"}           (alg pinned: anything else is refused)
//	claims  {"app":"shop","exp":1767225600}       (exp required; "sub" may name the app instead of "app")
//	key     the application's JWT secret, the whole "csj_…" string as bytes
//
// A token lives at most JWTPolicy.MaxLifetime: exp - iat, or exp - now when
// it has no iat. A leaked token must not act as the application for months
// because its publisher chose a distant exp; a publisher that wants a
// long-lived credential has the API key.
//
// It is verified with the standard library: the format is small and a
// dependency would bring algorithm negotiation that is exactly what must be
// refused. The application named by the unverified claims only chooses
// which secrets to try; nothing else is believed before the signature checks.

// JWTLeeway tolerates clock skew between the publisher and Cassata on exp, nbf and iat.
const JWTLeeway = 30 * time.Second

// maxJWTBytes bounds the tokens considered at all.
const maxJWTBytes = 8 << 10

// DefaultJWTMaxLifetime is JWTPolicy.MaxLifetime's default.
const DefaultJWTMaxLifetime = 24 * time.Hour

// JWTPolicy bounds the bearer JWTs AuthenticateJWT accepts.
type JWTPolicy struct {
	// MaxLifetime is the longest a token may be valid for: exp - iat, or
	// exp - now (less JWTLeeway) for a token without iat. Defaults to
	// DefaultJWTMaxLifetime (24h).
	MaxLifetime time.Duration
}

// WithDefaults fills zero fields with their defaults.
func (p JWTPolicy) WithDefaults() JWTPolicy {
	p.MaxLifetime = defaults.Positive(p.MaxLifetime, DefaultJWTMaxLifetime)
	return p
}

// Validate reports an invalid policy, after WithDefaults.
func (p JWTPolicy) Validate() error {
	if p.MaxLifetime < time.Minute {
		return fmt.Errorf("jwt: MaxLifetime must be at least 1m, not %s", p.MaxLifetime)
	}
	return nil
}

// TokenError says why a genuine bearer JWT (its signature checked) was
// refused: expired, not valid yet, or living longer than the policy allows.
// It is ErrUnauthorized for errors.Is. Tokens whose signature does not check
// get the bare ErrUnauthorized: a forger learns nothing.
type TokenError struct {
	// Reason is for the client: what is wrong with the token's claims.
	Reason string
}

func (e *TokenError) Error() string { return "bearer token refused: " + e.Reason }

// Unwrap makes a TokenError ErrUnauthorized.
func (e *TokenError) Unwrap() error { return ErrUnauthorized }

func tokenError(format string, args ...any) error {
	return &TokenError{Reason: fmt.Sprintf(format, args...)}
}

// LooksLikeJWT reports whether a bearer token has the shape of a JWS
// compact serialization (three base64url parts).
func LooksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2 && strings.HasPrefix(token, "eyJ")
}

type jwtHeader struct {
	Alg  string   `json:"alg"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
}

type jwtClaims struct {
	App string       `json:"app"`
	Sub string       `json:"sub"`
	Exp *json.Number `json:"exp"`
	Nbf *json.Number `json:"nbf"`
	Iat *json.Number `json:"iat"`
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func numericDate(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(f * 1000)), true
}

// AuthenticateJWT verifies an HS256 bearer JWT signed with one of the
// application's JWT secrets and returns the application. Every failure is
// ErrUnauthorized (the store's unavailability aside); a genuine token refused
// for its claims is a *TokenError saying why. The zero policy is the default
// one.
func (a *Apps) AuthenticateJWT(ctx context.Context, token string, policy JWTPolicy) (*App, error) {
	policy = policy.WithDefaults()
	if len(token) > maxJWTBytes {
		return nil, ErrUnauthorized
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrUnauthorized
	}
	var h jwtHeader
	if err := decodeSegment(parts[0], &h); err != nil || h.Alg != "HS256" || len(h.Crit) > 0 {
		// alg pinned: "none", RS256 (the HS/RS confusion), ES256... are refused.
		return nil, ErrUnauthorized
	}
	if h.Typ != "" && !strings.EqualFold(h.Typ, "JWT") {
		return nil, ErrUnauthorized
	}
	var c jwtClaims
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, ErrUnauthorized
	}
	name := c.App
	if name == "" {
		name = c.Sub
	} else if c.Sub != "" && c.Sub != c.App {
		return nil, ErrUnauthorized
	}
	if !scheduler.ValidApp(name) {
		return nil, ErrUnauthorized
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(sig) != sha256.Size {
		return nil, ErrUnauthorized
	}
	app, err := a.store.GetApp(ctx, name)
	if errors.Is(err, ErrAppNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	now := a.clock.Now()
	signed := []byte(parts[0] + "." + parts[1])
	valid := false
	for _, secret := range active(app.JWTSecrets, now) {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(signed)
		if hmac.Equal(m.Sum(nil), sig) {
			valid = true
		}
	}
	if !valid {
		return nil, ErrUnauthorized
	}
	// Claims are checked only once the token is known to be genuine.
	if err := checkClaims(c, now, policy); err != nil {
		return nil, err
	}
	return app, nil
}

// checkClaims checks a genuine token's time claims at now.
func checkClaims(c jwtClaims, now time.Time, policy JWTPolicy) error {
	exp, ok := numericDate(c.Exp)
	if !ok {
		return tokenError("exp is required, in Unix seconds")
	}
	if !now.Before(exp.Add(JWTLeeway)) {
		return tokenError("the token has expired")
	}
	if c.Nbf != nil {
		nbf, ok := numericDate(c.Nbf)
		if !ok {
			return tokenError("nbf is not a time in Unix seconds")
		}
		if now.Add(JWTLeeway).Before(nbf) {
			return tokenError("the token is not valid yet (nbf)")
		}
	}
	lifetime := exp.Sub(now) - JWTLeeway
	if c.Iat != nil {
		iat, ok := numericDate(c.Iat)
		if !ok {
			return tokenError("iat is not a time in Unix seconds")
		}
		if now.Add(JWTLeeway).Before(iat) {
			return tokenError("the token is issued in the future (iat)")
		}
		lifetime = exp.Sub(iat)
	}
	if lifetime > policy.MaxLifetime {
		return tokenError("the token lives %s (exp - iat, or exp - now without iat), longer than the %s allowed: mint tokens with a nearer exp",
			lifetime.Round(time.Second), policy.MaxLifetime)
	}
	return nil
}
