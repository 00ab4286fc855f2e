package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/cassata/cassata/scheduler/tenant"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
)

// Application management, for the admin token only:
//
//	POST /v1/apps                      {"name":"shop"}  -> 201 app + api_key, jwt_secret, signing_secret (shown once)
//	GET  /v1/apps                      -> {"apps":[...]} (no key, secrets masked)
//	GET  /v1/apps/{app}                -> the app
//	POST /v1/apps/{app}/rotate         {"grace":"1h"}   -> new api_key and jwt_secret; the old ones end after grace (default 0: at once)
//	POST /v1/apps/{app}/rotate-secret  {"grace":"24h"}  -> new signing_secret; the old one still signs for grace (default 24h)

// DefaultSecretGrace is how long a rotated-out signing secret keeps signing
// when the rotation does not say, so destinations have a day to switch.
const DefaultSecretGrace = 24 * time.Hour

// AppsAdmin mounts the application management routes (when Config.Apps is set).
func (a *API) AppsAdmin(r gin.IRoutes) {
	if a.cfg.Apps == nil {
		return
	}
	r.POST("/v1/apps", requireAdmin, a.createApp)
	r.GET("/v1/apps", requireAdmin, a.listApps)
	r.GET("/v1/apps/:app", requireAdmin, a.getApp)
	r.POST("/v1/apps/:app/rotate", requireAdmin, a.rotateApp)
	r.POST("/v1/apps/:app/rotate-secret", requireAdmin, a.rotateAppSecret)
}

// AppView is an application as the API shows it: never a key, secrets masked.
type AppView struct {
	Name           string       `json:"name"`
	CreatedAt      string       `json:"created_at"`
	Keys           []KeyView    `json:"keys"`
	JWTSecrets     []SecretView `json:"jwt_secrets"`
	SigningSecrets []SecretView `json:"signing_secrets"`
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

// appError maps application errors onto the API's.
func appError(err error) error {
	switch {
	case errors.Is(err, tenant.ErrAppNotFound):
		return &httpError{status: http.StatusNotFound, detail: ErrorDetail{Code: "app_not_found", Message: "application not found"}}
	case errors.Is(err, tenant.ErrAppExists):
		return &httpError{status: http.StatusConflict, detail: ErrorDetail{Code: "app_exists", Message: "an application of this name exists", Field: "name"}}
	case errors.Is(err, scheduler.ErrConflict):
		return &httpError{status: http.StatusConflict, detail: ErrorDetail{Code: "conflict", Message: "the application changed meanwhile; try again"}}
	}
	return err
}

func (a *API) credentials(c *gin.Context, status int, app *tenant.App, cr tenant.Credentials) {
	// Credentials must not linger in caches or proxies.
	c.Header("Cache-Control", "no-store")
	c.JSON(status, CredentialsResponse{App: ViewApp(app, a.cfg.Apps.Now()), APIKey: cr.APIKey,
		JWTSecret: cr.JWTSecret, SigningSecret: cr.SigningSecret})
}

func (a *API) createApp(c *gin.Context) {
	a.limitBody(c, 64<<10)
	var req struct {
		Name string `json:"name"`
		App  string `json:"app"`
	}
	if err := decodeJSON(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Name == "" {
		req.Name = req.App
	}
	app, cr, err := a.cfg.Apps.Create(c.Request.Context(), req.Name)
	if err != nil {
		abort(c, appError(err))
		return
	}
	a.log.Info("application created", "app", app.Name)
	a.credentials(c, http.StatusCreated, app, cr)
}

func (a *API) listApps(c *gin.Context) {
	apps, err := a.cfg.Apps.List(c.Request.Context())
	if err != nil {
		abort(c, appError(err))
		return
	}
	now := a.cfg.Apps.Now()
	out := make([]AppView, 0, len(apps))
	for _, app := range apps {
		out = append(out, ViewApp(app, now))
	}
	c.JSON(http.StatusOK, gin.H{"apps": out})
}

func (a *API) getApp(c *gin.Context) {
	app, err := a.cfg.Apps.Get(c.Request.Context(), c.Param("app"))
	if err != nil {
		abort(c, appError(err))
		return
	}
	c.JSON(http.StatusOK, ViewApp(app, a.cfg.Apps.Now()))
}

// graceOf reads {"grace":"1h"} (an empty body: def).
func graceOf(c *gin.Context, def time.Duration) (time.Duration, error) {
	var req struct {
		Grace json.RawMessage `json:"grace"`
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return 0, err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(bytes.NewReader(body), &req); err != nil {
			return 0, err
		}
	}
	if len(req.Grace) == 0 || string(req.Grace) == "null" {
		return def, nil
	}
	d, err := parseDuration(req.Grace)
	if err != nil || d < 0 || d > tenant.MaxGrace {
		return 0, badRequest("grace", `grace must be a Go duration such as "1h", from 0 to 720h`)
	}
	return d, nil
}

func (a *API) rotateApp(c *gin.Context) {
	a.limitBody(c, 64<<10)
	grace, err := graceOf(c, 0)
	if err != nil {
		abort(c, err)
		return
	}
	app, cr, err := a.cfg.Apps.Rotate(c.Request.Context(), c.Param("app"), grace)
	if err != nil {
		abort(c, appError(err))
		return
	}
	a.log.Info("application key rotated", "app", app.Name, "grace", grace)
	a.credentials(c, http.StatusOK, app, cr)
}

func (a *API) rotateAppSecret(c *gin.Context) {
	a.limitBody(c, 64<<10)
	grace, err := graceOf(c, DefaultSecretGrace)
	if err != nil {
		abort(c, err)
		return
	}
	app, cr, err := a.cfg.Apps.RotateSecret(c.Request.Context(), c.Param("app"), grace)
	if err != nil {
		abort(c, appError(err))
		return
	}
	a.log.Info("application signing secret rotated", "app", app.Name, "grace", grace)
	a.credentials(c, http.StatusOK, app, cr)
}
