package web

import (
	"sync"
	"time"
)

// limiter is a token bucket per client for failed logins: burst tokens that
// refill evenly over per (5 per minute by default). Only failures take
// tokens; an empty bucket refuses further attempts until it refills.
type limiter struct {
	mu      sync.Mutex
	burst   float64
	rate    float64 // tokens per second
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst int, per time.Duration) *limiter {
	return &limiter{burst: float64(burst), rate: float64(burst) / per.Seconds(), buckets: map[string]*bucket{}}
}

// refill brings b up to date at now. Callers hold mu.
func (l *limiter) refill(b *bucket, now time.Time) {
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.at = now
}

// allowed reports whether client has a token left at now (without taking one).
func (l *limiter) allowed(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[client]
	if !ok {
		return true
	}
	l.refill(b, now)
	return b.tokens >= 1
}

// fail takes a token from client's bucket.
func (l *limiter) fail(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[client]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[client] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// sweep forgets clients whose buckets are full again, at most once a
// minute, so the map stays as small as the set of recent offenders.
// Callers hold mu.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}
