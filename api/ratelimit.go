package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Rate limit defaults: generous, so that only a runaway client meets them.
const (
	// DefaultRateLimit is the requests per second one application may make
	// to one server (CASSATA_RATE_LIMIT).
	DefaultRateLimit = 1000
)

// sweepEvery is how often at most the limiter forgets idle applications.
const sweepEvery = time.Minute

// rateLimiter is a token bucket (golang.org/x/time/rate) per application:
// burst tokens, refilled at rate per second; a request takes one. It lives
// in the server process: with N servers behind a load balancer an
// application gets up to N times the rate, which is the trade for not
// paying a Redis round trip per request.
type rateLimiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func newRateLimiter(perSecond float64, burst int, now func() time.Time) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(2*perSecond)))
	}
	return &rateLimiter{rate: rate.Limit(perSecond), burst: burst, now: now, buckets: map[string]*rate.Limiter{}}
}

// take takes a token of key's bucket; when none is left it returns how long
// until one is (a refused request takes nothing).
func (l *rateLimiter) take(key string) (bool, time.Duration) {
	now := l.now()
	b := l.bucket(key, now)
	if b.AllowN(now, 1) {
		return true, 0
	}
	wait := time.Duration((1 - b.TokensAt(now)) / float64(l.rate) * float64(time.Second))
	return false, max(wait, 0)
}

// bucket returns key's bucket, a full one for a key not seen lately.
func (l *rateLimiter) bucket(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst) // full
		l.buckets[key] = b
	}
	return b
}

// sweep forgets, at most once a minute, the buckets that are full again:
// a full bucket behaves exactly like the new one bucket makes, so this
// changes nothing but the size of the map, which stays as small as the set
// of applications that sent requests within the last burst/rate seconds
// (keys are authenticated application names, but an application deleted or
// renamed must not stay forever). Callers hold mu.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < sweepEvery {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// size returns how many applications have a bucket (for tests).
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
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
