package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// Applications (tenants). Each application has:
//
//   - API keys: "csk_" + base64url(32 random bytes). A key is shown once, when
//     it is made; only its SHA-256 is stored (a plain hash is right for a
//     256-bit random token: there is nothing to brute-force), with an index
//     hash -> application so that authenticating a request is one lookup.
//   - a JWT secret: "csj_" + base64url(32 random bytes), the HS256 key of the
//     bearer JWTs an application may send instead of its key (see jwt.go). It
//     is an inbound credential like the key and rotates with it.
//   - a signing secret: "whsec_" + base64(32 random bytes), the Standard
//     Webhooks secret that signs every delivery (see signing.go). It is kept
//     apart from the JWT secret on purpose: destinations hold the signing
//     secret to verify deliveries, and must not be able to act as the
//     application at Cassata with it.
//
// Rotation puts a new credential first and either drops the old ones at once
// or lets them expire after a grace period, so clients can switch without
// downtime.

// Credential prefixes: recognisable in logs, config files and secret scanners.
const (
	APIKeyPrefix        = "csk_"
	JWTSecretPrefix     = "csj_"
	SigningSecretPrefix = "whsec_"
)

// Sizes of the random part of credentials, in bytes.
const (
	apiKeyBytes        = 32
	jwtSecretBytes     = 32
	signingSecretBytes = 32
)

// MaxGrace bounds how long a rotated-out credential may stay valid.
const MaxGrace = 30 * 24 * time.Hour

// Sentinel errors of application management.
var (
	// ErrAppNotFound: no application of that name.
	ErrAppNotFound = errors.New("application not found")
	// ErrAppExists: an application of that name exists already.
	ErrAppExists = errors.New("application exists")
	// ErrUnauthorized: the credential is unknown, revoked, expired or malformed.
	ErrUnauthorized = errors.New("invalid credentials")
)

// App is one application (tenant). It never holds an API key, only the
// keys' hashes; its secrets print masked (see Secret).
type App struct {
	Name      string
	CreatedAt time.Time
	// Revision counts the writes of the record; stores use it to refuse a
	// write based on a stale read.
	Revision int64
	// Keys are the API keys' hashes, the newest first.
	Keys []KeyHash
	// JWTSecrets verify bearer JWTs, the newest first.
	JWTSecrets []Secret
	// SigningSecrets sign deliveries, the newest first.
	SigningSecrets []Secret
}

// KeyHash is the stored form of an API key.
type KeyHash struct {
	// Hash is the hex SHA-256 of the whole key, prefix included.
	Hash string
	// Hint is the key's prefix and last four characters ("csk_…abcd"), so
	// operators can tell keys apart without the key.
	Hint      string
	CreatedAt time.Time
	// ExpiresAt is zero for a key without end; set for a rotated-out key in
	// its grace period.
	ExpiresAt time.Time
}

// ActiveAt reports whether the key is valid at now.
func (k KeyHash) ActiveAt(now time.Time) bool { return k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt) }

// Secret is a secret value that prints masked: fmt, slog and encoding/json
// show "whsec_…abcd". Reveal returns the value itself.
type Secret struct {
	value     string
	CreatedAt time.Time
	// ExpiresAt is zero for the current secret; set for a rotated-out one.
	ExpiresAt time.Time
}

// NewSecret returns a Secret (stores use it to read secrets back).
func NewSecret(value string, created, expires time.Time) Secret {
	return Secret{value: value, CreatedAt: created, ExpiresAt: expires}
}

// Reveal returns the secret itself. Only signing, JWT verification, stores
// and the one-time display at creation call it.
func (s Secret) Reveal() string { return s.value }

// Masked returns the secret's prefix and last four characters.
func (s Secret) Masked() string { return Mask(s.value) }

// String implements fmt.Stringer with the masked form.
func (s Secret) String() string { return s.Masked() }

// GoString masks %#v too.
func (s Secret) GoString() string { return "Secret(" + s.Masked() + ")" }

// LogValue implements slog.LogValuer with the masked form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.Masked()) }

// MarshalJSON writes the masked form, so a Secret cannot leak through a
// JSON response or log by accident.
func (s Secret) MarshalJSON() ([]byte, error) {
	return []byte(`"` + s.Masked() + `"`), nil
}

// ActiveAt reports whether the secret is valid at now.
func (s Secret) ActiveAt(now time.Time) bool { return s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) }

// Mask shows a credential's prefix (up to its "_") and last four characters.
func Mask(v string) string {
	if v == "" {
		return ""
	}
	prefix := ""
	if i := strings.IndexByte(v, '_'); i >= 0 && i < 8 {
		prefix, v = v[:i+1], v[i+1:]
	}
	v = strings.TrimRight(v, "=") // base64 padding tells nothing apart
	if len(v) < 12 {
		return prefix + "…"
	}
	return prefix + "…" + v[len(v)-4:]
}

// HashKey returns the stored form of an API key: hex SHA-256.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Credentials are the plain credentials made by a create or rotation: shown
// to the operator once, never stored as they are (the API key) or stored in
// the application's record (the secrets). Empty fields were not changed.
type Credentials struct {
	APIKey        string
	JWTSecret     string
	SigningSecret string
}

// AppStore is what applications need from the store.
type AppStore interface {
	// CreateApp stores a new application and indexes its key hashes;
	// ErrAppExists when the name is taken.
	CreateApp(ctx context.Context, app *App) error
	// GetApp returns an application or ErrAppNotFound.
	GetApp(ctx context.Context, name string) (*App, error)
	// ListApps returns every application, sorted by name.
	ListApps(ctx context.Context) ([]*App, error)
	// AppByKeyHash returns the application indexed under an API key hash
	// or ErrAppNotFound. It does not check the key's expiry.
	AppByKeyHash(ctx context.Context, hash string) (*App, error)
	// UpdateApp replaces an application read at app.Revision, increments
	// the revision and brings the key index in line (new hashes added,
	// removed ones deleted). ErrConflict when it changed since the read.
	UpdateApp(ctx context.Context, app *App) error
}

// Apps manages applications and checks their credentials.
type Apps struct {
	store AppStore
	clock scheduler.Clock
}

// NewApps returns the application manager. clock defaults to SystemClock.
func NewApps(store AppStore, clock scheduler.Clock) *Apps {
	if clock == nil {
		clock = scheduler.SystemClock{}
	}
	return &Apps{store: store, clock: clock}
}

// Now returns the clock's time.
func (a *Apps) Now() time.Time { return a.clock.Now() }

func randomToken(prefix string, n int, enc *base64.Encoding) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return prefix + enc.EncodeToString(b), nil
}

func newAPIKey() (string, error) {
	return randomToken(APIKeyPrefix, apiKeyBytes, base64.RawURLEncoding)
}

func newJWTSecret() (string, error) {
	return randomToken(JWTSecretPrefix, jwtSecretBytes, base64.RawURLEncoding)
}

func newSigningSecret() (string, error) {
	return randomToken(SigningSecretPrefix, signingSecretBytes, base64.StdEncoding)
}

func keyHash(key string, now time.Time) KeyHash {
	return KeyHash{Hash: HashKey(key), Hint: Mask(key), CreatedAt: now}
}

// Create makes an application with a fresh API key, JWT secret and signing
// secret, and returns the three (the key is not kept: show it now).
func (a *Apps) Create(ctx context.Context, name string) (*App, Credentials, error) {
	if !scheduler.ValidApp(name) {
		return nil, Credentials{}, scheduler.Invalid("name", "application name must match [A-Za-z0-9._-]{1,64}")
	}
	var cr Credentials
	var err error
	if cr.APIKey, err = newAPIKey(); err != nil {
		return nil, Credentials{}, err
	}
	if cr.JWTSecret, err = newJWTSecret(); err != nil {
		return nil, Credentials{}, err
	}
	if cr.SigningSecret, err = newSigningSecret(); err != nil {
		return nil, Credentials{}, err
	}
	now := a.clock.Now().UTC().Truncate(time.Millisecond)
	app := &App{
		Name: name, CreatedAt: now,
		Keys:           []KeyHash{keyHash(cr.APIKey, now)},
		JWTSecrets:     []Secret{NewSecret(cr.JWTSecret, now, time.Time{})},
		SigningSecrets: []Secret{NewSecret(cr.SigningSecret, now, time.Time{})},
	}
	if err := a.store.CreateApp(ctx, app); err != nil {
		return nil, Credentials{}, err
	}
	return app, cr, nil
}

// Get returns an application.
func (a *Apps) Get(ctx context.Context, name string) (*App, error) {
	if !scheduler.ValidApp(name) {
		return nil, ErrAppNotFound
	}
	return a.store.GetApp(ctx, name)
}

// List returns every application, sorted by name.
func (a *Apps) List(ctx context.Context) ([]*App, error) { return a.store.ListApps(ctx) }

func checkGrace(grace time.Duration) error {
	if grace < 0 || grace > MaxGrace {
		return scheduler.Invalid("grace", "grace must be between 0 and %s", MaxGrace)
	}
	return nil
}

// retire ends the credentials that are still valid at now+grace (all of
// them, without a grace) and drops those already ended at now.
func retire[T any](list []T, now time.Time, grace time.Duration, active func(T, time.Time) bool, setExpiry func(*T, time.Time)) []T {
	out := make([]T, 0, len(list))
	end := now.Add(grace)
	for _, c := range list {
		if grace == 0 || !active(c, now) {
			continue
		}
		if active(c, end) {
			setExpiry(&c, end)
		}
		out = append(out, c)
	}
	return out
}

// Rotate replaces an application's API key and JWT secret (its inbound
// credentials). Without grace the old ones stop working at once; with it
// they work until now+grace. It returns the new key and JWT secret.
func (a *Apps) Rotate(ctx context.Context, name string, grace time.Duration) (*App, Credentials, error) {
	if err := checkGrace(grace); err != nil {
		return nil, Credentials{}, err
	}
	var cr Credentials
	var err error
	if cr.APIKey, err = newAPIKey(); err != nil {
		return nil, Credentials{}, err
	}
	if cr.JWTSecret, err = newJWTSecret(); err != nil {
		return nil, Credentials{}, err
	}
	app, err := a.update(ctx, name, func(app *App, now time.Time) {
		keys := retire(app.Keys, now, grace, KeyHash.ActiveAt, func(k *KeyHash, t time.Time) { k.ExpiresAt = t })
		app.Keys = append([]KeyHash{keyHash(cr.APIKey, now)}, keys...)
		secrets := retire(app.JWTSecrets, now, grace, Secret.ActiveAt, func(s *Secret, t time.Time) { s.ExpiresAt = t })
		app.JWTSecrets = append([]Secret{NewSecret(cr.JWTSecret, now, time.Time{})}, secrets...)
	})
	if err != nil {
		return nil, Credentials{}, err
	}
	return app, cr, nil
}

// RotateSecret replaces an application's signing secret. During the grace
// every delivery carries a signature with each secret, so destinations can
// switch to the new one at their own pace.
func (a *Apps) RotateSecret(ctx context.Context, name string, grace time.Duration) (*App, Credentials, error) {
	if err := checkGrace(grace); err != nil {
		return nil, Credentials{}, err
	}
	secret, err := newSigningSecret()
	if err != nil {
		return nil, Credentials{}, err
	}
	app, err := a.update(ctx, name, func(app *App, now time.Time) {
		old := retire(app.SigningSecrets, now, grace, Secret.ActiveAt, func(s *Secret, t time.Time) { s.ExpiresAt = t })
		app.SigningSecrets = append([]Secret{NewSecret(secret, now, time.Time{})}, old...)
	})
	if err != nil {
		return nil, Credentials{}, err
	}
	return app, Credentials{SigningSecret: secret}, nil
}

// update applies change to a fresh read of the application, retrying when
// another writer got there first.
func (a *Apps) update(ctx context.Context, name string, change func(*App, time.Time)) (*App, error) {
	if !scheduler.ValidApp(name) {
		return nil, ErrAppNotFound
	}
	for try := 0; ; try++ {
		app, err := a.store.GetApp(ctx, name)
		if err != nil {
			return nil, err
		}
		change(app, a.clock.Now().UTC().Truncate(time.Millisecond))
		err = a.store.UpdateApp(ctx, app)
		if !errors.Is(err, scheduler.ErrConflict) || try == 10 {
			return app, err
		}
	}
}

// Authenticate returns the application an API key belongs to, or
// ErrUnauthorized for an unknown, revoked or expired key.
func (a *Apps) Authenticate(ctx context.Context, key string) (*App, error) {
	if !strings.HasPrefix(key, APIKeyPrefix) || len(key) > 256 {
		return nil, ErrUnauthorized
	}
	hash := HashKey(key)
	app, err := a.store.AppByKeyHash(ctx, hash)
	if errors.Is(err, ErrAppNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	now := a.clock.Now()
	ok := 0
	for _, k := range app.Keys {
		// The index found the record by this hash; comparing again in
		// constant time checks the record agrees (the index is only a
		// pointer) without a timing difference between keys.
		if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(hash)) == 1 && k.ActiveAt(now) {
			ok = 1
		}
	}
	if ok == 0 {
		return nil, ErrUnauthorized
	}
	return app, nil
}

// active returns the values of the secrets valid at now.
func active(list []Secret, now time.Time) []string {
	var out []string
	for _, s := range list {
		if s.ActiveAt(now) {
			out = append(out, s.value)
		}
	}
	return out
}

// SigningKeys returns the HMAC keys of an application's signing secrets
// valid now, the newest first: nil for an application without a record
// (events created with auth off), which gets unsigned deliveries.
func (a *Apps) SigningKeys(ctx context.Context, name string) ([][]byte, error) {
	app, err := a.Get(ctx, name)
	if errors.Is(err, ErrAppNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for _, s := range active(app.SigningSecrets, a.clock.Now()) {
		k, err := SigningKey(s)
		if err != nil {
			return nil, fmt.Errorf("application %s: %w", name, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// SigningKey decodes a "whsec_" secret into its HMAC key (the base64 part).
func SigningKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SigningSecretPrefix)
	if !ok {
		return nil, errors.New("signing secret lacks the whsec_ prefix")
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(k) < 24 {
		return nil, errors.New("signing secret is not base64 of at least 24 bytes")
	}
	return k, nil
}
