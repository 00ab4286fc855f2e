package web

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sessionCookie holds the signed session.
const sessionCookie = "cassata_session"

// kdfIterations is the PBKDF2 cost of deriving the session key from the
// password: paid once at start-up, and by anyone trying to guess the
// password from a captured cookie, per guess. Tests lower it.
var kdfIterations = 600_000

// sessions issues and checks session cookies. They are stateless: the value
// is "v1.<expiry unix s>.<nonce>" and its HMAC-SHA256, so any replica with
// the same password and salt can check them.
type sessions struct {
	key      []byte
	password [32]byte // SHA-256 of the password, for constant-time compare
	ttl      time.Duration
}

func newSessions(password, salt string, ttl time.Duration) *sessions {
	key, err := pbkdf2.Key(sha256.New, password, []byte("cassata admin session v1\x00"+salt), kdfIterations, 32)
	if err != nil {
		// Only for parameters out of FIPS bounds, which these are not.
		panic("web: derive session key: " + err.Error())
	}
	return &sessions{key: key, password: sha256.Sum256([]byte(password)), ttl: ttl}
}

// checkLogin compares the credentials in constant time (the password's
// length included, by comparing hashes).
func (s *sessions) checkLogin(username, password string) bool {
	got := sha256.Sum256([]byte(password))
	userOK := subtle.ConstantTimeCompare([]byte(username), []byte(Username))
	passOK := subtle.ConstantTimeCompare(got[:], s.password[:])
	return userOK&passOK == 1
}

// issue returns a new session value that expires ttl after now.
func (s *sessions) issue(now time.Time) string {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	payload := "v1." + strconv.FormatInt(now.Add(s.ttl).Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString(nonce[:])
	return payload + "." + s.sign(payload)
}

func (s *sessions) sign(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check reports whether value is a session this key signed that has not expired at now.
func (s *sessions) check(value string, now time.Time) bool {
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return false
	}
	payload, mac := value[:i], value[i+1:]
	if !hmac.Equal([]byte(mac), []byte(s.sign(payload))) {
		return false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	return err == nil && now.Unix() < exp
}

// valid reports whether the request carries a valid session.
func (s *sessions) valid(r *http.Request, now time.Time) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && s.check(c.Value, now)
}

// secureRequest reports whether the browser reached us over TLS, directly or
// through a proxy that says so; cookies are then marked Secure.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
