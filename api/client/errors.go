package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error is an error answer of the API: its HTTP status and the JSON error
// body {"error":{"code","message","field"}} of API.md §5.
type Error struct {
	// Status is the HTTP status (400, 401, 403, 404, 409, 413, 422, 429, 503, ...).
	Status int
	// Code is the machine-readable code, e.g. "not_found", "duplicate",
	// "status_conflict", "invalid_url", "rate_limited".
	Code string
	// Field names the offending input field of a validation error ("" otherwise).
	Field string
	// Message is the human-readable explanation.
	Message string
	// RetryAfter is the server's Retry-After (429, 503), 0 without one.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "cassata: %d", e.Status)
	if e.Code != "" {
		sb.WriteString(" " + e.Code)
	}
	if e.Field != "" {
		sb.WriteString(" (field " + e.Field + ")")
	}
	if e.Message != "" {
		sb.WriteString(": " + e.Message)
	}
	return sb.String()
}

// errorDetail is the "error" object of an error body (and of a batch result).
type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (d errorDetail) toError(status int) *Error {
	return &Error{Status: status, Code: d.Code, Field: d.Field, Message: d.Message}
}

// decodeError reads an error answer. A body that is not the API's (a proxy's
// HTML page) still gives an *Error with the status and the start of the body.
func decodeError(status int, body []byte, retryAfter time.Duration) *Error {
	var eb struct {
		Error *errorDetail `json:"error"`
	}
	var e *Error
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e = eb.Error.toError(status)
	} else {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		e = &Error{Status: status, Message: msg}
	}
	e.RetryAfter = retryAfter
	return e
}

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404 answer: no such event, message,
// subscription, schedule, flow key or application.
func IsNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 answer: a create whose id exists
// with different content (IsDuplicate), or an action the object's status
// does not allow (cancelling an event that is not PENDING, ...).
func IsConflict(err error) bool { return statusOf(err) == http.StatusConflict }

// IsDuplicate reports whether err is the 409 of a create whose id exists
// with different content.
func IsDuplicate(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict && e.Code == "duplicate"
}

// IsInvalid reports whether err is a 400 answer (bad input; Field names it).
func IsInvalid(err error) bool { return statusOf(err) == http.StatusBadRequest }

// IsUnauthorized reports whether err is a 401 answer: no or an unknown credential.
func IsUnauthorized(err error) bool { return statusOf(err) == http.StatusUnauthorized }

// IsForbidden reports whether err is a 403 answer: the credential may not
// act on that application (or needs to be the admin token).
func IsForbidden(err error) bool { return statusOf(err) == http.StatusForbidden }

// IsRateLimited reports whether err is a 429 answer (after the retries).
func IsRateLimited(err error) bool { return statusOf(err) == http.StatusTooManyRequests }
