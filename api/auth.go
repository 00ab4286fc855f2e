package api

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Authorizer checks the bearer token of a JSON API request; app is the
// application the request acts on ("" when it names none).
type Authorizer func(token string) bool

// TokenAuth accepts only the admin token (CASSATA_ADMIN_TOKEN). Until
// per-application keys exist it is the whole of CASSATA_AUTH=on: with no
// admin token configured every JSON API request is refused.
func TokenAuth(adminToken string) Authorizer {
	return func(token string) bool {
		return adminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(adminToken)) == 1
	}
}

func requireToken(auth Authorizer) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || token == "" {
			c.Header("WWW-Authenticate", `Bearer realm="cassata"`)
			abortWith(c, http.StatusUnauthorized, ErrorDetail{Code: "unauthorized", Message: "an API key is required: Authorization: Bearer <key>"})
			return
		}
		if !auth(strings.TrimSpace(token)) {
			abortWith(c, http.StatusUnauthorized, ErrorDetail{Code: "unauthorized", Message: "the API key is not valid"})
			return
		}
		c.Next()
	}
}
