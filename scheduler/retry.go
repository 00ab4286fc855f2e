package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cassata/cassata/internal/defaults"
)

// Retry policy defaults (API.md §2).
const (
	DefaultMaxAttempts = 5
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 10 * time.Minute
	DefaultTimeout     = 30 * time.Second
)

// Policy decides how often and how far apart an event is retried.
type Policy struct {
	// MaxAttempts is the number of attempts in total. Defaults to 5.
	MaxAttempts int
	// MinBackoff is the delay before the first retry. Defaults to 1s.
	MinBackoff time.Duration
	// MaxBackoff caps every delay, Retry-After included. Defaults to 10m.
	MaxBackoff time.Duration
	// Timeout bounds one attempt. Defaults to 30s.
	Timeout time.Duration
}

// WithDefaults fills zero fields with the defaults.
func (p Policy) WithDefaults() Policy {
	p.MaxAttempts = defaults.Positive(p.MaxAttempts, DefaultMaxAttempts)
	p.MinBackoff = defaults.Positive(p.MinBackoff, DefaultMinBackoff)
	p.MaxBackoff = defaults.Positive(p.MaxBackoff, DefaultMaxBackoff)
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
	p.Timeout = defaults.Positive(p.Timeout, DefaultTimeout)
	return p
}

// Validate reports the invalid fields of a policy, after WithDefaults.
func (p Policy) Validate() error {
	var errs []error
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxMaxAttempts {
		errs = append(errs, fmt.Errorf("policy: MaxAttempts must be between 1 and %d, not %d", MaxMaxAttempts, p.MaxAttempts))
	}
	if p.MinBackoff <= 0 || p.MinBackoff > MaxBackoffLimit {
		errs = append(errs, fmt.Errorf("policy: MinBackoff must be between 1ns and %s, not %s", MaxBackoffLimit, p.MinBackoff))
	}
	if p.MaxBackoff < p.MinBackoff || p.MaxBackoff > MaxBackoffLimit {
		errs = append(errs, fmt.Errorf("policy: MaxBackoff must be between MinBackoff (%s) and %s, not %s", p.MinBackoff, MaxBackoffLimit, p.MaxBackoff))
	}
	if p.Timeout <= 0 || p.Timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("policy: Timeout must be between 1ns and %s, not %s", MaxTimeout, p.Timeout))
	}
	return errors.Join(errs...)
}

// For returns the policy with the event's own overrides applied.
func (p Policy) For(ev *Event) Policy {
	if ev.MaxAttempts > 0 {
		p.MaxAttempts = ev.MaxAttempts
	}
	if ev.MinBackoff > 0 {
		p.MinBackoff = ev.MinBackoff
	}
	if ev.MaxBackoff > 0 {
		p.MaxBackoff = ev.MaxBackoff
	}
	if ev.Timeout > 0 {
		p.Timeout = ev.Timeout
	}
	return p.WithDefaults()
}

// Backoff returns the delay before the attempt after attempt number n
// (1-based). The base is MinBackoff·2^(n-1), capped at MaxBackoff; the delay
// is drawn uniformly from [base, 1.5·base] (capped at MaxBackoff), so a crowd
// of events that failed together does not come back together, not even on
// the first retry. Where the cap squeezes that range to less than a quarter
// of the base, it is [0.75·MaxBackoff, MaxBackoff] instead. Nothing is ever
// below MinBackoff. retryAfter, when positive, is the destination's
// Retry-After: honoured as the delay, but kept within [MinBackoff, MaxBackoff].
func (p Policy) Backoff(n int, retryAfter time.Duration, rnd *rand.Rand) time.Duration {
	if retryAfter > 0 {
		return max(p.MinBackoff, min(retryAfter, p.MaxBackoff))
	}
	lo, hi := p.backoffRange(n)
	if hi <= lo {
		return lo
	}
	span := int64(hi-lo) + 1
	var j int64
	if rnd != nil {
		j = rnd.Int64N(span)
	} else {
		j = rand.Int64N(span)
	}
	return lo + time.Duration(j)
}

// backoffRange is the range Backoff draws from for attempt n.
func (p Policy) backoffRange(n int) (lo, hi time.Duration) {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	lo, hi = d, min(d+d/2, p.MaxBackoff)
	if hi-lo < d/4 {
		lo = max(p.MinBackoff, hi-hi/4)
	}
	return lo, hi
}
