package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket (golang.org/x/time/rate) per client for failed
// logins: burst tokens that refill evenly over per (5 per minute by
// default). Only failures take tokens; an empty bucket refuses further
// attempts until it refills.
type limiter struct {
	mu      sync.Mutex
	burst   int
	rate    rate.Limit
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func newLimiter(burst int, per time.Duration) *limiter {
	return &limiter{burst: burst, rate: rate.Limit(float64(burst) / per.Seconds()), buckets: map[string]*rate.Limiter{}}
}

// allowed reports whether client has a token left at now (without taking one).
func (l *limiter) allowed(client string, now time.Time) bool {
	l.mu.Lock()
	b, ok := l.buckets[client]
	l.mu.Unlock()
	return !ok || b.TokensAt(now) >= 1
}

// fail takes a token from client's bucket (none when it is empty).
func (l *limiter) fail(client string, now time.Time) {
	l.mu.Lock()
	l.sweep(now)
	b, ok := l.buckets[client]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst) // full
		l.buckets[client] = b
	}
	l.mu.Unlock()
	b.AllowN(now, 1)
}

// sweep forgets clients whose buckets are full again, at most once a
// minute, so the map stays as small as the set of recent offenders (a full
// bucket is no different from the new one fail would make). Callers hold mu.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}
