package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Rate limit defaults: generous, so that only a runaway client meets them.
const (
	// DefaultRateLimit is the requests per second one application may make
	// to one server (CASSATA_RATE_LIMIT).
	DefaultRateLimit = 1000
)

// rateLimiter is a token bucket per application: burst tokens, refilled at
// rate per second; a request takes one. It lives in the server process:
// with N servers behind a load balancer an application gets up to N times
// the rate, which is the trade for not paying a Redis round trip per request.
type rateLimiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(2*rate)))
	}
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*tokenBucket{}}
}

// take takes a token of key's bucket; when none is left it returns how long
// until one is.
func (l *rateLimiter) take(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		// Keys are authenticated application names: few, so no eviction.
		b = &tokenBucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// rateLimit refuses (429, Retry-After) an application's request beyond its
// rate. The admin token is not limited.
func (a *API) rateLimit() gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principal(c)
		if a.limiter == nil || !ok || p.Admin {
			c.Next()
			return
		}
		if ok, wait := a.limiter.take(p.App); !ok {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			c.Header("Retry-After", strconv.Itoa(secs))
			abort(c, rateLimited("too many requests for application "+p.App+": retry after "+strconv.Itoa(secs)+"s"))
			return
		}
		c.Next()
	}
}
