package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler/tenant"
)

// Application management, for the admin token only:
//
//	POST /v1/apps                      {"name":"shop"}  -> 201 app + api_key, jwt_secret, signing_secret (shown once)
//	GET  /v1/apps                      -> {"apps":[...]} (no key, secrets masked)
//	GET  /v1/apps/{app}                -> the app
//	POST /v1/apps/{app}/rotate         {"grace":"1h"}   -> new api_key and jwt_secret; the old ones end after grace (default 0: at once)
//	POST /v1/apps/{app}/rotate-secret  {"grace":"24h"}  -> new signing_secret; the old one still signs for grace (default 24h)
//	POST /v1/apps/{app}/pause, /resume -> {"app","paused","held"} (flows.go, with Config.Flows)

// DefaultSecretGrace is how long a rotated-out signing secret keeps signing
// when the rotation does not say, so destinations have a day to switch.
const DefaultSecretGrace = 24 * time.Hour

// AppsAdmin mounts the application management routes (when Config.Apps is set).
func (a *API) AppsAdmin(r gin.IRoutes) {
	if a.cfg.Apps == nil {
		return
	}
	const maxBody = 64 << 10
	r.POST("/v1/apps", requireAdmin, bodyLimit(maxBody), handle(v1Routes, a.createApp))
	r.GET("/v1/apps", requireAdmin, handle(v1Routes, a.listApps))
	r.GET("/v1/apps/:app", requireAdmin, handle(v1Routes, a.getApp))
	r.POST("/v1/apps/:app/rotate", requireAdmin, bodyLimit(maxBody), handle(v1Routes, a.rotateApp))
	r.POST("/v1/apps/:app/rotate-secret", requireAdmin, bodyLimit(maxBody), handle(v1Routes, a.rotateAppSecret))
}

// AppView is an application as the API shows it: never a key, secrets masked.
type AppView struct {
	Name           string       `json:"name"`
	CreatedAt      string       `json:"created_at"`
	Keys           []KeyView    `json:"keys"`
	JWTSecrets     []SecretView `json:"jwt_secrets"`
	SigningSecrets []SecretView `json:"signing_secrets"`
	// Paused is shown by GET /v1/apps/{app} when flow control is on
	// (Config.Flows); left out elsewhere.
	Paused *bool `json:"paused,omitempty"`
}

// KeyView shows an API key by its hint.
type KeyView struct {
	Hint      string  `json:"hint"`
	CreatedAt string  `json:"created_at"`
	ExpiresAt *string `json:"expires_at"`
}

// SecretView shows a secret masked.
type SecretView struct {
	Masked    string  `json:"masked"`
	CreatedAt string  `json:"created_at"`
	ExpiresAt *string `json:"expires_at"`
}

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := fmtTime(t)
	return &s
}

// ViewApp builds the API view of an application at now: credentials that
// ended are left out.
func ViewApp(app *tenant.App, now time.Time) AppView {
	v := AppView{Name: app.Name, CreatedAt: fmtTime(app.CreatedAt), Keys: []KeyView{},
		JWTSecrets: []SecretView{}, SigningSecrets: []SecretView{}}
	for _, k := range app.Keys {
		if k.ActiveAt(now) {
			v.Keys = append(v.Keys, KeyView{Hint: k.Hint, CreatedAt: fmtTime(k.CreatedAt), ExpiresAt: optTime(k.ExpiresAt)})
		}
	}
	secrets := func(list []tenant.Secret) []SecretView {
		out := []SecretView{}
		for _, s := range list {
			if s.ActiveAt(now) {
				out = append(out, SecretView{Masked: s.Masked(), CreatedAt: fmtTime(s.CreatedAt), ExpiresAt: optTime(s.ExpiresAt)})
			}
		}
		return out
	}
	v.JWTSecrets, v.SigningSecrets = secrets(app.JWTSecrets), secrets(app.SigningSecrets)
	return v
}

// CredentialsResponse answers a create or rotation: the credentials made,
// shown this once.
type CredentialsResponse struct {
	App           AppView `json:"app"`
	APIKey        string  `json:"api_key,omitempty"`
	JWTSecret     string  `json:"jwt_secret,omitempty"`
	SigningSecret string  `json:"signing_secret,omitempty"`
}

// AppsResponse is the body of GET /v1/apps.
type AppsResponse struct {
	Apps []AppView `json:"apps"`
}

// credentials answers a create or rotation with the credentials made.
func (a *API) credentials(status int, app *tenant.App, cr tenant.Credentials) reply[CredentialsResponse] {
	return reply[CredentialsResponse]{
		status: status,
		// Credentials must not linger in caches or proxies.
		header: http.Header{"Cache-Control": {"no-store"}},
		body: CredentialsResponse{App: ViewApp(app, a.cfg.Apps.Now()), APIKey: cr.APIKey,
			JWTSecret: cr.JWTSecret, SigningSecret: cr.SigningSecret},
	}
}

// createAppRequest is POST /v1/apps: {"name":"shop"} ("app" is accepted too).
type createAppRequest struct {
	Name string `json:"name"`
	App  string `json:"app"`
}

func (r *createAppRequest) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, r); err != nil {
		return err
	}
	if r.Name == "" {
		r.Name = r.App
	}
	return nil
}

func (a *API) createApp(ctx context.Context, req *createAppRequest) (reply[CredentialsResponse], error) {
	app, cr, err := a.cfg.Apps.Create(ctx, req.Name)
	if err != nil {
		return reply[CredentialsResponse]{}, err
	}
	a.log.Info("application created", "app", app.Name)
	return a.credentials(http.StatusCreated, app, cr), nil
}

func (a *API) listApps(ctx context.Context, _ *noRequest) (AppsResponse, error) {
	apps, err := a.cfg.Apps.List(ctx)
	if err != nil {
		return AppsResponse{}, err
	}
	now := a.cfg.Apps.Now()
	out := make([]AppView, 0, len(apps))
	for _, app := range apps {
		out = append(out, ViewApp(app, now))
	}
	return AppsResponse{Apps: out}, nil
}

// appRequest names an application in the path; only the admin reaches it
// (requireAdmin), so it is not scoped.
type appRequest struct {
	Name string
}

func (r *appRequest) bind(c *gin.Context) error {
	r.Name = c.Param("app")
	return nil
}

func (a *API) getApp(ctx context.Context, req *appRequest) (AppView, error) {
	app, err := a.cfg.Apps.Get(ctx, req.Name)
	if err != nil {
		return AppView{}, err
	}
	v := ViewApp(app, a.cfg.Apps.Now())
	if a.cfg.Flows != nil {
		p, err := a.cfg.Flows.AppPaused(ctx, app.Name)
		if err != nil {
			return AppView{}, err
		}
		v.Paused = &p.Paused
	}
	return v, nil
}

// rotateRequest is POST /v1/apps/{app}/rotate and /rotate-secret:
// {"grace":"1h"}; an empty body or a null grace leaves Grace nil.
type rotateRequest struct {
	Name  string
	Grace *time.Duration
}

func (r *rotateRequest) bind(c *gin.Context) error {
	r.Name = c.Param("app")
	var body struct {
		Grace json.RawMessage `json:"grace"`
	}
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeJSON(bytes.NewReader(raw), &body); err != nil {
			return err
		}
	}
	if len(body.Grace) == 0 || string(body.Grace) == "null" {
		return nil
	}
	d, err := parseDuration(body.Grace)
	if err != nil || d < 0 || d > tenant.MaxGrace {
		return badRequest("grace", `grace must be a Go duration such as "1h", from 0 to 720h`)
	}
	r.Grace = &d
	return nil
}

// grace is the request's grace, or def when it gives none.
func (r *rotateRequest) grace(def time.Duration) time.Duration {
	if r.Grace == nil {
		return def
	}
	return *r.Grace
}

func (a *API) rotateApp(ctx context.Context, req *rotateRequest) (reply[CredentialsResponse], error) {
	grace := req.grace(0)
	app, cr, err := a.cfg.Apps.Rotate(ctx, req.Name, grace)
	if err != nil {
		return reply[CredentialsResponse]{}, err
	}
	a.log.Info("application key rotated", "app", app.Name, "grace", grace)
	return a.credentials(http.StatusOK, app, cr), nil
}

func (a *API) rotateAppSecret(ctx context.Context, req *rotateRequest) (reply[CredentialsResponse], error) {
	grace := req.grace(DefaultSecretGrace)
	app, cr, err := a.cfg.Apps.RotateSecret(ctx, req.Name, grace)
	if err != nil {
		return reply[CredentialsResponse]{}, err
	}
	a.log.Info("application signing secret rotated", "app", app.Name, "grace", grace)
	return a.credentials(http.StatusOK, app, cr), nil
}
