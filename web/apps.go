package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler/tenant"
)

// AppLister lists the applications for the Applications page.
// *scheduler.Apps satisfies it.
type AppLister interface {
	List(ctx context.Context) ([]*tenant.App, error)
	Now() time.Time
}

var _ AppLister = (*tenant.Apps)(nil)

// appsView is the Applications page: names, dates, key hints and masked
// secrets. It is built from Hint and Masked only, so no template can show
// a secret by mistake.
type appsView struct {
	Apps []appView
	// ShowPause adds each application's pause with its toggle (Config.Flows).
	ShowPause bool
}

type appView struct {
	Name, Created      string
	Keys, Signing, JWT []credentialView
	// Paused and Held are the application's pause (with ShowPause).
	Paused bool
	Held   string
}

type credentialView struct {
	Shown string // a key's hint or a secret's masked form
	Until string // when a rotated-out credential ends; "" for a current one
}

func shortTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func newAppsView(apps []*tenant.App, now time.Time) appsView {
	v := appsView{Apps: make([]appView, 0, len(apps))}
	secrets := func(list []tenant.Secret) []credentialView {
		var out []credentialView
		for _, s := range list {
			if s.ActiveAt(now) {
				out = append(out, credentialView{Shown: s.Masked(), Until: shortTime(s.ExpiresAt)})
			}
		}
		return out
	}
	for _, a := range apps {
		av := appView{Name: a.Name, Created: shortTime(a.CreatedAt),
			Signing: secrets(a.SigningSecrets), JWT: secrets(a.JWTSecrets)}
		for _, k := range a.Keys {
			if k.ActiveAt(now) {
				av.Keys = append(av.Keys, credentialView{Shown: k.Hint, Until: shortTime(k.ExpiresAt)})
			}
		}
		v.Apps = append(v.Apps, av)
	}
	return v
}

func (u *UI) apps(c *gin.Context) {
	list, err := u.cfg.Apps.List(c.Request.Context())
	if err != nil {
		u.fail(c, err)
		return
	}
	v := newAppsView(list, u.cfg.Apps.Now())
	if u.cfg.Flows != nil {
		paused, err := u.cfg.Flows.PausedApps(c.Request.Context())
		if err != nil {
			u.fail(c, err)
			return
		}
		v.ShowPause = true
		for i := range v.Apps {
			for _, ap := range paused {
				if ap.App == v.Apps[i].Name {
					v.Apps[i].Paused, v.Apps[i].Held = true, strconv.Itoa(ap.Held)
				}
			}
		}
	}
	p := u.page(c, "Applications", "apps")
	p.Flash = u.takeFlash(c)
	u.render(c, http.StatusOK, appsPage(p, v))
}
