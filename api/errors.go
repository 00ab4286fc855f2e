package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
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

// httpError is an error with its HTTP status, for input problems found by the API layer itself.
type httpError struct {
	status int
	detail ErrorDetail
}

func (e *httpError) Error() string { return e.detail.Message }

func badRequest(field, msg string) error {
	return &httpError{status: http.StatusBadRequest, detail: ErrorDetail{Code: "invalid_request", Message: msg, Field: field}}
}

// errorFor maps an error to its HTTP status and body, in this one place.
func errorFor(err error) (int, ErrorDetail) {
	var he *httpError
	var ve *scheduler.ValidationError
	var se *scheduler.StatusError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.detail
	case errors.As(err, &ve):
		if ve.TooLarge {
			return http.StatusRequestEntityTooLarge, ErrorDetail{Code: "too_large", Message: ve.Message, Field: ve.Field}
		}
		return http.StatusBadRequest, ErrorDetail{Code: "invalid_" + ve.Field, Message: ve.Message, Field: ve.Field}
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, ErrorDetail{Code: "too_large", Message: "request body is larger than the limit"}
	case errors.As(err, &se):
		return http.StatusConflict, ErrorDetail{Code: "status_conflict", Message: se.Error()}
	case errors.Is(err, scheduler.ErrNotFound):
		return http.StatusNotFound, ErrorDetail{Code: "not_found", Message: "event not found"}
	case errors.Is(err, scheduler.ErrDuplicate):
		return http.StatusConflict, ErrorDetail{Code: "duplicate", Message: "an event with this app and id exists with different content"}
	case errors.Is(err, scheduler.ErrNoArchive):
		return http.StatusServiceUnavailable, ErrorDetail{Code: "no_archive", Message: "this needs the archive database: set CASSATA_ARCHIVE_DSN"}
	case errors.Is(err, scheduler.ErrUnavailable):
		return http.StatusServiceUnavailable, ErrorDetail{Code: "unavailable", Message: "storage is unavailable; try again (a create is safe to repeat with the same id: it is stored at most once)"}
	}
	return http.StatusInternalServerError, ErrorDetail{Code: "internal", Message: "internal error"}
}

// abort writes the v1 error body for err.
func abort(c *gin.Context, err error) {
	status, d := errorFor(err)
	if status >= 500 && status != http.StatusServiceUnavailable {
		slog.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, ErrorBody{Error: d})
}
