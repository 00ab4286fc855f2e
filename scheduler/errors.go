package scheduler

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on; the API maps them to HTTP statuses in one place.
var (
	// ErrNotFound: no event with that identity, live or archived.
	ErrNotFound = errors.New("event not found")
	// ErrDuplicate: the identity exists with different content.
	ErrDuplicate = errors.New("duplicate entry for appId and eventId combination")
	// ErrConflict: the event's status does not allow the operation.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input failed validation (see ValidationError).
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge: the input is larger than allowed.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable: storage cannot be reached; nothing was accepted.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrNoArchive: the operation needs the archive, which is not configured.
	ErrNoArchive = errors.New("no archive configured")
	// ErrLeaseLost: the caller no longer holds the event's lease.
	ErrLeaseLost = errors.New("lease lost: another worker owns the event")
)

// ValidationError names the offending input field.
type ValidationError struct {
	Field   string
	Message string
	// TooLarge marks size violations (HTTP 413).
	TooLarge bool
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrInvalid) and, for size violations, ErrTooLarge hold.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid || (e.TooLarge && target == ErrTooLarge)
}

// Invalid returns a ValidationError naming field.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// StatusError says that an operation is not allowed in the event's current status.
type StatusError struct {
	Status Status
	Op     string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("event in status %s. Cannot be %s.", e.Status, e.Op)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *StatusError) Unwrap() error { return ErrConflict }
