package scheduler

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPolicyWithDefaults(t *testing.T) {
	t.Parallel()
	got := Policy{}.WithDefaults()
	want := Policy{MaxAttempts: 5, MinBackoff: time.Second, MaxBackoff: 10 * time.Minute, Timeout: 30 * time.Second}
	if got != want {
		t.Fatalf("WithDefaults = %+v, want %+v", got, want)
	}
	// A maximum below the minimum is raised to it.
	if p := (Policy{MinBackoff: time.Minute, MaxBackoff: time.Second}).WithDefaults(); p.MaxBackoff != time.Minute {
		t.Fatalf("MaxBackoff = %v, want raised to MinBackoff", p.MaxBackoff)
	}
}

func TestPolicyFor(t *testing.T) {
	t.Parallel()
	base := Policy{MaxAttempts: 3, MinBackoff: 2 * time.Second, MaxBackoff: time.Minute, Timeout: 10 * time.Second}
	if got := base.For(&Event{}); got != base {
		t.Fatalf("For(no overrides) = %+v, want %+v", got, base)
	}
	ev := &Event{MaxAttempts: 9, MinBackoff: 5 * time.Second, MaxBackoff: time.Hour, Timeout: time.Second}
	want := Policy{MaxAttempts: 9, MinBackoff: 5 * time.Second, MaxBackoff: time.Hour, Timeout: time.Second}
	if got := base.For(ev); got != want {
		t.Fatalf("For(overrides) = %+v, want %+v", got, want)
	}
	// An event raising only its minimum above the worker's maximum still gets a sane range.
	if got := base.For(&Event{MinBackoff: 5 * time.Minute}); got.MaxBackoff != 5*time.Minute {
		t.Fatalf("For(min above max) = %+v", got)
	}
	// The zero worker policy gets the defaults.
	if got := (Policy{}).For(&Event{}); got != (Policy{}).WithDefaults() {
		t.Fatalf("zero policy For = %+v", got)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
	}{
		{"defaults", Policy{}.WithDefaults()},
		{"short", Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second}.WithDefaults()},
		{"odd minimum", Policy{MinBackoff: 3 * time.Millisecond, MaxBackoff: time.Hour}.WithDefaults()},
		{"min equals max", Policy{MinBackoff: 7 * time.Second, MaxBackoff: 7 * time.Second}.WithDefaults()},
		{"max at the limit", Policy{MinBackoff: time.Second, MaxBackoff: MaxBackoffLimit}.WithDefaults()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.policy
			rnd := rand.New(rand.NewPCG(1, 2))
			for n := 1; n <= 64; n++ {
				// The documented range: base = MinBackoff * 2^(n-1) capped at
				// MaxBackoff; [base, 1.5 base] capped, or [0.75 max, max] when
				// the cap squeezes it; never below MinBackoff.
				base := p.MinBackoff
				for i := 1; i < n && base < p.MaxBackoff; i++ {
					base *= 2
				}
				base = min(base, p.MaxBackoff)
				lo, hi := base, min(base*3/2, p.MaxBackoff)
				if hi-lo < base/4 {
					lo = max(p.MinBackoff, p.MaxBackoff*3/4)
				}
				distinct := map[time.Duration]bool{}
				for range 200 {
					got := p.Backoff(n, 0, rnd)
					if got < lo || got > hi {
						t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", n, got, lo, hi)
					}
					if got < p.MinBackoff || got > p.MaxBackoff {
						t.Fatalf("Backoff(%d) = %v, outside [%v, %v]", n, got, p.MinBackoff, p.MaxBackoff)
					}
					distinct[got] = true
				}
				// Jitter spreads a crowd unless the range is a single point.
				if hi > lo && len(distinct) < 2 {
					t.Fatalf("Backoff(%d): 200 draws gave only %v", n, distinct)
				}
			}
		})
	}
}

func TestBackoffGrowsExponentially(t *testing.T) {
	t.Parallel()
	p := Policy{MinBackoff: time.Second, MaxBackoff: 10 * time.Minute}.WithDefaults()
	rnd := rand.New(rand.NewPCG(7, 7))
	// Bases double: 1s, 2s, 4s, ... until the 10m cap (attempt 11: 1024s > 600s).
	bases := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600}
	for i, b := range bases {
		n := i + 1
		b *= time.Second
		wantLo, wantHi := b, min(b*3/2, p.MaxBackoff)
		if wantHi-wantLo < b/4 {
			wantLo = p.MaxBackoff * 3 / 4
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 500 {
			got := p.Backoff(n, 0, rnd)
			lo, hi = min(lo, got), max(hi, got)
		}
		if lo < wantLo || hi > wantHi {
			t.Fatalf("Backoff(%d) ranged over [%v, %v], want within [%v, %v]", n, lo, hi, wantLo, wantHi)
		}
		// 500 draws reach close to both ends of the jitter range, the first retry included.
		span := wantHi - wantLo
		if hi < wantHi-span/10 || lo > wantLo+span/10 {
			t.Fatalf("Backoff(%d) ranged over [%v, %v]: jitter does not cover [%v, %v]", n, lo, hi, wantLo, wantHi)
		}
	}
}

func TestBackoffSeeded(t *testing.T) {
	t.Parallel()
	p := Policy{}.WithDefaults()
	a, b := rand.New(rand.NewPCG(42, 0)), rand.New(rand.NewPCG(42, 0))
	for n := 1; n <= 20; n++ {
		if x, y := p.Backoff(n, 0, a), p.Backoff(n, 0, b); x != y {
			t.Fatalf("same seed, attempt %d: %v != %v", n, x, y)
		}
	}
	// Without a source the global one is used; still within bounds.
	for n := 1; n <= 20; n++ {
		if got := p.Backoff(n, 0, nil); got < p.MinBackoff || got > p.MaxBackoff {
			t.Fatalf("Backoff(%d, nil rnd) = %v", n, got)
		}
	}
}

func TestBackoffRetryAfter(t *testing.T) {
	t.Parallel()
	p := Policy{MinBackoff: 2 * time.Second, MaxBackoff: 10 * time.Minute}.WithDefaults()
	tests := []struct {
		name       string
		n          int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"honoured", 1, 30 * time.Second, 30 * time.Second},
		{"honoured over the exponential delay", 8, 17 * time.Second, 17 * time.Second},
		{"capped at the maximum", 1, time.Hour, 10 * time.Minute},
		{"exactly the maximum", 3, 10 * time.Minute, 10 * time.Minute},
		{"never below the minimum", 1, 500 * time.Millisecond, 2 * time.Second},
		{"exactly the minimum", 1, 2 * time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rnd := rand.New(rand.NewPCG(1, 1))
			if got := p.Backoff(tt.n, tt.retryAfter, rnd); got != tt.want {
				t.Fatalf("Backoff(%d, Retry-After %v) = %v, want %v", tt.n, tt.retryAfter, got, tt.want)
			}
		})
	}
}
