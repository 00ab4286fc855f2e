package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler/tenant"
)

// Authentication and scoping of the JSON API (API.md §5, CASSATA_AUTH=on).
//
//	Authorization: Bearer <token>
//	   admin token (CASSATA_ADMIN_TOKEN)  -> acts on every application, manages applications
//	   csk_…  API key                     -> acts on its own application only
//	   eyJ….eyJ….…  HS256 JWT             -> acts on the application it names, signed with its JWT secret
//
// A missing or unknown credential is 401 with WWW-Authenticate; a valid one
// acting on another application's events is 403. Handlers call allowApp or
// scopeApp with the application a request names; with no Authorizer (auth
// off) both allow everything.

// Principal is who a request acts as.
type Principal struct {
	// App is the application the credential belongs to ("" for the admin).
	App string
	// Admin acts on every application and manages them.
	Admin bool
}

// Authorizer tells who a bearer token is: scheduler.ErrUnauthorized for a
// token that is no credential, scheduler.ErrUnavailable when that cannot be
// told now.
type Authorizer interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// adminToken compares a presented token with the admin token in constant
// time, the length included (both sides are hashed first).
type adminToken [sha256.Size]byte

func newAdminToken(s string) *adminToken {
	if s == "" {
		return nil
	}
	t := adminToken(sha256.Sum256([]byte(s)))
	return &t
}

func (t *adminToken) matches(token string) bool {
	if t == nil {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], t[:]) == 1
}

type tokenAuth struct{ admin *adminToken }

// TokenAuth accepts the admin token only.
func TokenAuth(admin string) Authorizer { return tokenAuth{newAdminToken(admin)} }

func (a tokenAuth) Authenticate(_ context.Context, token string) (Principal, error) {
	if a.admin.matches(token) {
		return Principal{Admin: true}, nil
	}
	return Principal{}, tenant.ErrUnauthorized
}

type keyAuth struct {
	apps  *tenant.Apps
	admin *adminToken
	jwt   tenant.JWTPolicy
}

// KeyAuthConfig configures NewKeyAuth.
type KeyAuthConfig struct {
	// AdminToken (CASSATA_ADMIN_TOKEN) acts on every application. Empty: none.
	AdminToken string
	// JWT bounds the bearer JWTs accepted (CASSATA_JWT_MAX_LIFETIME).
	// Defaults to scheduler.JWTPolicy's defaults (24h at most).
	JWT tenant.JWTPolicy
}

// KeyAuth accepts the admin token (when set), the applications' API keys and
// bearer JWTs signed with an application's JWT secret, under the default
// JWT policy.
func KeyAuth(apps *tenant.Apps, admin string) Authorizer {
	return NewKeyAuth(apps, KeyAuthConfig{AdminToken: admin})
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c KeyAuthConfig) WithDefaults() KeyAuthConfig {
	c.JWT = c.JWT.WithDefaults()
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c KeyAuthConfig) Validate() error {
	var errs []error
	if strings.ContainsFunc(c.AdminToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		errs = append(errs, errors.New("auth: AdminToken must not contain spaces or control characters (it is sent as a bearer token)"))
	}
	if err := c.JWT.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("auth: JWT: %w", err))
	}
	return errors.Join(errs...)
}

// NewKeyAuth is KeyAuth with every setting. Settings Validate refuses are
// the caller's to report first; here the JWT policy falls back to its
// defaults rather than accept every lifetime.
func NewKeyAuth(apps *tenant.Apps, cfg KeyAuthConfig) Authorizer {
	cfg = cfg.WithDefaults()
	if cfg.JWT.Validate() != nil {
		cfg.JWT = tenant.JWTPolicy{}.WithDefaults()
	}
	return keyAuth{apps: apps, admin: newAdminToken(cfg.AdminToken), jwt: cfg.JWT}
}

func (a keyAuth) Authenticate(ctx context.Context, token string) (Principal, error) {
	var app *tenant.App
	var err error
	switch {
	case a.admin.matches(token):
		return Principal{Admin: true}, nil
	case strings.HasPrefix(token, tenant.APIKeyPrefix):
		app, err = a.apps.Authenticate(ctx, token)
	case tenant.LooksLikeJWT(token):
		app, err = a.apps.AuthenticateJWT(ctx, token, a.jwt)
	default:
		return Principal{}, tenant.ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{App: app.Name}, nil
}

const principalKey = "cassata.principal"

func (a *API) authenticate(auth Authorizer) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			c.Header("WWW-Authenticate", `Bearer realm="cassata"`)
			abort(c, unauthorized("an API key is required: Authorization: Bearer <key>"))
			return
		}
		p, err := auth.Authenticate(c.Request.Context(), token)
		if errors.Is(err, tenant.ErrUnauthorized) {
			msg := "the API key is not valid (unknown, revoked or expired)"
			// A genuine JWT refused for its claims says why, so its
			// publisher can fix how it mints them.
			var te *tenant.TokenError
			if errors.As(err, &te) {
				msg = "the bearer token is not accepted: " + te.Reason
			}
			c.Header("WWW-Authenticate", `Bearer realm="cassata", error="invalid_token"`)
			abort(c, unauthorized(msg))
			return
		}
		if err != nil {
			abort(c, err) // storage unavailable: 503, try again
			return
		}
		c.Set(principalKey, p)
		c.Next()
	}
}

// principal returns the request's principal; false when auth is off.
func principal(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(principalKey)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok
}

// allowApp refuses (403) a request whose credential may not act on app.
func allowApp(c *gin.Context, app string) error {
	p, ok := principal(c)
	if !ok || p.Admin || p.App == app {
		return nil
	}
	return forbidden("this credential belongs to application " + p.App + " and cannot act on application " + app)
}

// scopeApp is allowApp for a request that may leave the application out: an
// application's credential fills in its own.
func scopeApp(c *gin.Context, app *string) error {
	if p, ok := principal(c); ok && !p.Admin && *app == "" {
		*app = p.App
	}
	return allowApp(c, *app)
}

// requireAdmin refuses (403) application credentials: only the admin token
// manages applications.
func requireAdmin(c *gin.Context) {
	if p, ok := principal(c); ok && !p.Admin {
		abort(c, errNotAdmin)
		return
	}
	c.Next()
}
