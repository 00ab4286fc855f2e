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

// CSRF protection: a double-submit token plus an origin check (see doc.go).
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
		if token == "" || !sameOrigin(r) || !tokenMatches(token, submittedToken(c)) {
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

// sameOrigin reports whether the Origin (or, without one, the Referer) the
// browser sent names the host the request was sent to. Requests with
// neither (old browsers, privacy settings) rely on the token alone. Behind a
// reverse proxy that rewrites Host, X-Forwarded-Host names the host the
// browser used; a cross-site page cannot set that header on a form post.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	o, err := url.Parse(src)
	if err != nil || o.Host == "" {
		return false // includes Origin: null
	}
	if strings.EqualFold(o.Host, r.Host) {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	fwd = strings.TrimSpace(fwd)
	return fwd != "" && strings.EqualFold(o.Host, fwd)
}

// csrfToken returns the request's token for the forms of the page.
func csrfToken(c *gin.Context) string { return c.GetString(ctxCSRF) }
