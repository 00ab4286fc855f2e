package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/topic"
)

// ErrorBody is the JSON error body of API.md §5.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// httpError is an error with its HTTP status, for problems found by the API
// layer itself (bad input, credentials, routing).
type httpError struct {
	status int
	detail ErrorDetail
}

func (e *httpError) Error() string { return e.detail.Message }

func badRequest(field, msg string) error {
	return &httpError{status: http.StatusBadRequest, detail: ErrorDetail{Code: "invalid_request", Message: msg, Field: field}}
}

// The API layer's own refusals.
var (
	errNoRoute          = &httpError{status: http.StatusNotFound, detail: ErrorDetail{Code: "not_found", Message: "no such route"}}
	errMethodNotAllowed = &httpError{status: http.StatusMethodNotAllowed, detail: ErrorDetail{Code: "method_not_allowed", Message: "method not allowed on this route"}}
	// errPanic answers a panic: the generic 500, nothing of the panic value.
	errPanic    = &httpError{status: http.StatusInternalServerError, detail: ErrorDetail{Code: "internal", Message: "internal error"}}
	errNotAdmin = &httpError{status: http.StatusForbidden, detail: ErrorDetail{Code: "forbidden", Message: "managing applications needs the admin token (CASSATA_ADMIN_TOKEN)"}}
	// errFlowNotFound answers a flow key without a record (flows.go).
	errFlowNotFound = &httpError{status: http.StatusNotFound, detail: ErrorDetail{Code: "not_found", Message: "flow key not found"}}
	errBatchTooBig  = &httpError{status: http.StatusRequestEntityTooLarge, detail: ErrorDetail{Code: "too_large", Message: "a batch holds at most 1000 events", Field: "events"}}
)

func unauthorized(msg string) error {
	return &httpError{status: http.StatusUnauthorized, detail: ErrorDetail{Code: "unauthorized", Message: msg}}
}

func forbidden(msg string) error {
	return &httpError{status: http.StatusForbidden, detail: ErrorDetail{Code: "forbidden", Message: msg, Field: "app"}}
}

func rateLimited(msg string) error {
	return &httpError{status: http.StatusTooManyRequests, detail: ErrorDetail{Code: "rate_limited", Message: msg}}
}

// errorFor maps an error to its HTTP status and body, in this one place.
// internal reports an error nothing here knows: a bug or an outage to log.
func errorFor(err error) (status int, d ErrorDetail, internal bool) {
	var he *httpError
	var ve *scheduler.ValidationError
	var se *scheduler.StatusError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.detail, false
	case errors.As(err, &ve):
		if ve.TooLarge {
			return http.StatusRequestEntityTooLarge, ErrorDetail{Code: "too_large", Message: ve.Message, Field: ve.Field}, false
		}
		return http.StatusBadRequest, ErrorDetail{Code: "invalid_" + ve.Field, Message: ve.Message, Field: ve.Field}, false
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, ErrorDetail{Code: "too_large", Message: "request body is larger than the limit"}, false
	case errors.As(err, &se):
		return http.StatusConflict, ErrorDetail{Code: "status_conflict", Message: se.Error()}, false
	// Subscriptions' errors wrap the scheduler's sentinels: they come first.
	case errors.Is(err, topic.ErrSubscriptionNotFound):
		return http.StatusNotFound, ErrorDetail{Code: "not_found", Message: "subscription not found"}, false
	case errors.Is(err, topic.ErrSubscriptionExists):
		return http.StatusConflict, ErrorDetail{Code: "duplicate", Message: "a subscription with this app and id exists with different content"}, false
	case errors.Is(err, topic.ErrTooManySubscriptions):
		return http.StatusConflict, ErrorDetail{Code: "too_many_subscriptions", Message: fmt.Sprintf(
			"an application has at most %d subscriptions; delete some first", topic.MaxSubscriptionsPerApp)}, false
	case errors.Is(err, schedule.ErrScheduleNotFound):
		return http.StatusNotFound, ErrorDetail{Code: "not_found", Message: "schedule not found"}, false
	case errors.Is(err, schedule.ErrScheduleExists):
		return http.StatusConflict, ErrorDetail{Code: "duplicate", Message: "a schedule with this app and id exists with different content"}, false
	case errors.Is(err, schedule.ErrRevChanged):
		return http.StatusConflict, ErrorDetail{Code: "conflict", Message: "the schedule kept changing meanwhile; try again"}, false
	case errors.Is(err, scheduler.ErrNotFound):
		return http.StatusNotFound, ErrorDetail{Code: "not_found", Message: "event not found"}, false
	case errors.Is(err, scheduler.ErrDuplicate):
		return http.StatusConflict, ErrorDetail{Code: "duplicate", Message: "an event with this app and id exists with different content"}, false
	case errors.Is(err, tenant.ErrAppNotFound):
		return http.StatusNotFound, ErrorDetail{Code: "app_not_found", Message: "application not found"}, false
	case errors.Is(err, tenant.ErrAppExists):
		return http.StatusConflict, ErrorDetail{Code: "app_exists", Message: "an application of this name exists", Field: "name"}, false
	case errors.Is(err, scheduler.ErrConflict):
		// Only application updates return a bare ErrConflict (an event's is a StatusError).
		return http.StatusConflict, ErrorDetail{Code: "conflict", Message: "the application changed meanwhile; try again"}, false
	case errors.Is(err, scheduler.ErrNoArchive):
		return http.StatusServiceUnavailable, ErrorDetail{Code: "no_archive", Message: "this needs the archive database: set CASSATA_ARCHIVE_DSN"}, false
	case errors.Is(err, scheduler.ErrUnavailable):
		return http.StatusServiceUnavailable, ErrorDetail{Code: "unavailable", Message: "storage is unavailable; try again (a create is safe to repeat with the same id: it is stored at most once)"}, false
	}
	return http.StatusInternalServerError, ErrorDetail{Code: "internal", Message: "internal error"}, true
}

// family is a set of routes that share the shape of their error answers.
type family int

const (
	// v1Routes answer {"error":{"code","message","field"}} (API.md §5); so do
	// the process endpoints and the middleware of every route.
	v1Routes family = iota
	// cassataRoutes answer like the original Cassata (API.md §4):
	// {"status":"failed","message":..} for the original's own cases, that
	// plus "field" and the v1 "error" object otherwise.
	cassataRoutes
)

// writeError answers err in the shape of the route family and stops the
// handler chain. It is the only place an error becomes a status and a body.
func writeError(c *gin.Context, fam family, err error) {
	if fam == cassataRoutes {
		if status, msg, ok := cassataKnown(err); ok {
			c.AbortWithStatusJSON(status, gin.H{"status": "failed", "message": msg})
			return
		}
	}
	status, d, internal := errorFor(err)
	if internal {
		slog.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	if fam == cassataRoutes {
		c.AbortWithStatusJSON(status, gin.H{"status": "failed", "message": d.Message, "field": d.Field, "error": d})
		return
	}
	c.AbortWithStatusJSON(status, ErrorBody{Error: d})
}

// cassataKnown gives the original Cassata's status and message for the
// errors it knew.
func cassataKnown(err error) (int, string, bool) {
	var se *scheduler.StatusError
	switch {
	case errors.Is(err, scheduler.ErrNotFound):
		return http.StatusNotFound, "event not found", true
	case errors.Is(err, scheduler.ErrDuplicate):
		return http.StatusConflict, scheduler.ErrDuplicate.Error(), true
	case errors.As(err, &se):
		return http.StatusConflict, se.Error(), true
	}
	return 0, "", false
}

// abort writes the v1 error body for err (middleware and v1 routes).
func abort(c *gin.Context, err error) { writeError(c, v1Routes, err) }
