// Package defaults holds the one rule every component config's WithDefaults
// applies to its numbers and durations: zero or negative means "not set",
// so the default applies. Validate then only sees values that were set.
package defaults

// Number is what Positive accepts: counts, sizes, rates and durations
// (time.Duration is an int64).
type Number interface {
	~int | ~int32 | ~int64 | ~float64
}

// Positive returns v when it is positive, and def otherwise.
func Positive[T Number](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
