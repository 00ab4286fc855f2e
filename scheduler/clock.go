package scheduler

import "time"

// Clock tells the time. Scheduling logic takes it injected so tests can move time.
type Clock interface {
	Now() time.Time
}

// SystemClock is the machine's clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
