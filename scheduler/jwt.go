package scheduler

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Bearer JWTs. Publishers that cannot keep a long-lived API key in their
// requests may send a short-lived JWT instead:
//
//	header  {"alg":"HS256","typ":"JWT"}           (alg pinned: anything else is refused)
//	claims  {"app":"shop","exp":1767225600}       (exp required; "sub" may name the app instead of "app")
//	key     the application's JWT secret, the whole "csj_…" string as bytes
//
// It is verified with the standard library: the format is small and a
// dependency would bring algorithm negotiation that is exactly what must be
// refused. The application named by the unverified claims only chooses
// which secrets to try; nothing else is believed before the signature checks.

// JWTLeeway tolerates clock skew between the publisher and Cassata on exp, nbf and iat.
const JWTLeeway = 30 * time.Second

// maxJWTBytes bounds the tokens considered at all.
const maxJWTBytes = 8 << 10

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
// ErrUnauthorized (the store's unavailability aside).
func (a *Apps) AuthenticateJWT(ctx context.Context, token string) (*App, error) {
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
	if !ValidApp(name) {
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
	exp, ok := numericDate(c.Exp)
	if !ok || !now.Before(exp.Add(JWTLeeway)) {
		return nil, ErrUnauthorized
	}
	if c.Nbf != nil {
		nbf, ok := numericDate(c.Nbf)
		if !ok || now.Add(JWTLeeway).Before(nbf) {
			return nil, ErrUnauthorized
		}
	}
	if c.Iat != nil {
		iat, ok := numericDate(c.Iat)
		if !ok || now.Add(JWTLeeway).Before(iat) {
			return nil, ErrUnauthorized
		}
	}
	return app, nil
}
