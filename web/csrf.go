package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
)

// CSRF protection, two layers (see doc.go):
//
//  1. Go's http.CrossOriginProtection: a browser's Sec-Fetch-Site (every
//     browser since 2023), else its Origin compared with Host.
//  2. The double-submit token in a SameSite=Strict cookie, plus a Referer
//     check when the browser sent neither Sec-Fetch-Site nor Origin.
//
// The second layer stays because the first lets through, by design, every
// request that carries neither header: it cannot tell an old browser (or one
// whose privacy settings strip Origin) from a non-browser client. The admin
// UI has no non-browser clients, so nothing it serves needs that leniency,
// and the token costs one hidden field. The token layer is also what stops
// a cross-site POST that a browser sends without the Strict cookie.
const (
	csrfCookie = "cassata_csrf"
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	ctxCSRF    = "cassata.csrf"
)

// csrf makes sure the browser has a token (setting the cookie when it has
// none) and refuses a POST whose token or origin does not match.
func (u *UI) csrf(c *gin.Context) {
	r := c.Request
	cookie, err := r.Cookie(csrfCookie)
	token := ""
	if err == nil && len(cookie.Value) >= 32 {
		token = cookie.Value
	}
	if r.Method == http.MethodPost {
		if token == "" || !u.sameOrigin(r) || !tokenMatches(token, submittedToken(c)) {
			u.renderError(c, http.StatusForbidden, errorView{
				Title:   "Request refused",
				Message: "This form was not sent from this site, or it is out of date. Go back, reload the page and try again.",
			})
			c.Abort()
			return
		}
	}
	if token == "" {
		token = newToken()
		http.SetCookie(c.Writer, &http.Cookie{
			Name: csrfCookie, Value: token, Path: u.prefix,
			HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode,
		})
	}
	c.Set(ctxCSRF, token)
}

func submittedToken(c *gin.Context) string {
	if t := c.GetHeader(csrfHeader); t != "" {
		return t
	}
	return c.PostForm(csrfField)
}

func tokenMatches(want, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// crossOrigin is the first layer: Go's cross-origin check.
var crossOrigin = http.NewCrossOriginProtection()

// sameOrigin reports whether a POST comes from this site. The verdict is
// http.CrossOriginProtection's, with two additions for browsers that send
// no Sec-Fetch-Site (before 2023): behind a reverse proxy that rewrites
// Host, an Origin naming X-Forwarded-Host (which a cross-site form cannot
// set) is this site; and without Origin either, a Referer, when sent, must
// name this host. Requests with no header at all rely on the token.
func (u *UI) sameOrigin(r *http.Request) bool {
	err := crossOrigin.Check(r)
	if r.Header.Get("Sec-Fetch-Site") != "" {
		return err == nil
	}
	origin := r.Header.Get("Origin")
	if err != nil {
		return origin != "" && hostIs(origin, forwardedHost(r))
	}
	if ref := r.Header.Get("Referer"); origin == "" && ref != "" {
		return hostIs(ref, r.Host) || hostIs(ref, forwardedHost(r))
	}
	return true
}

// hostIs reports whether URL src names host (a non-empty one).
func hostIs(src, host string) bool {
	o, err := url.Parse(src)
	return err == nil && host != "" && o.Host != "" && strings.EqualFold(o.Host, host)
}

// forwardedHost returns the first X-Forwarded-Host, the host the browser
// used when a reverse proxy rewrote Host.
func forwardedHost(r *http.Request) string {
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	return strings.TrimSpace(fwd)
}

// csrfToken returns the request's token for the forms of the page.
func csrfToken(c *gin.Context) string { return c.GetString(ctxCSRF) }
