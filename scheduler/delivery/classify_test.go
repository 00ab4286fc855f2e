package delivery

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	connErr := errors.New("dial tcp 192.0.2.1:80: connect: connection refused")
	tests := []struct {
		name string
		r    Result
		want scheduler.Status
	}{
		{"200", Result{StatusCode: 200}, scheduler.StatusCompleted},
		{"201", Result{StatusCode: 201}, scheduler.StatusCompleted},
		{"204", Result{StatusCode: 204}, scheduler.StatusCompleted},
		{"299", Result{StatusCode: 299}, scheduler.StatusCompleted},
		{"301", Result{StatusCode: 301}, scheduler.StatusFailed},
		{"302", Result{StatusCode: 302}, scheduler.StatusFailed},
		{"304", Result{StatusCode: 304}, scheduler.StatusFailed},
		{"307", Result{StatusCode: 307}, scheduler.StatusFailed},
		{"400", Result{StatusCode: 400}, scheduler.StatusFailed},
		{"401", Result{StatusCode: 401}, scheduler.StatusFailed},
		{"403", Result{StatusCode: 403}, scheduler.StatusFailed},
		{"404", Result{StatusCode: 404}, scheduler.StatusFailed},
		{"408", Result{StatusCode: 408}, scheduler.StatusPending},
		{"409", Result{StatusCode: 409}, scheduler.StatusFailed},
		{"410", Result{StatusCode: 410}, scheduler.StatusFailed},
		{"413", Result{StatusCode: 413}, scheduler.StatusFailed},
		{"422", Result{StatusCode: 422}, scheduler.StatusFailed},
		{"429", Result{StatusCode: 429, RetryAfter: time.Second}, scheduler.StatusPending},
		{"499", Result{StatusCode: 499}, scheduler.StatusFailed},
		{"500", Result{StatusCode: 500}, scheduler.StatusPending},
		{"502", Result{StatusCode: 502}, scheduler.StatusPending},
		{"503", Result{StatusCode: 503}, scheduler.StatusPending},
		{"504", Result{StatusCode: 504}, scheduler.StatusPending},
		{"599", Result{StatusCode: 599}, scheduler.StatusPending},
		{"connection error", Result{Err: connErr}, scheduler.StatusPending},
		{"timeout", Result{Err: errors.New("timeout after 30s")}, scheduler.StatusPending},
		{"unbuildable", Result{Err: errors.New("build request: bad"), Unbuildable: true}, scheduler.StatusFailed},
		{"blocked address", Result{Err: ErrBlockedAddress, Unbuildable: true}, scheduler.StatusFailed},
		// Cassata-Retry: false (API.md §9): no further attempt, whatever
		// the status; a 2xx stays a success.
		{"503 no retry", Result{StatusCode: 503, NoRetry: true}, scheduler.StatusFailed},
		{"429 no retry", Result{StatusCode: 429, RetryAfter: time.Second, NoRetry: true}, scheduler.StatusFailed},
		{"408 no retry", Result{StatusCode: 408, NoRetry: true}, scheduler.StatusFailed},
		{"500 no retry", Result{StatusCode: 500, NoRetry: true}, scheduler.StatusFailed},
		{"404 no retry", Result{StatusCode: 404, NoRetry: true}, scheduler.StatusFailed},
		{"302 no retry", Result{StatusCode: 302, NoRetry: true}, scheduler.StatusFailed},
		{"200 no retry", Result{StatusCode: 200, NoRetry: true}, scheduler.StatusCompleted},
		{"204 no retry", Result{StatusCode: 204, NoRetry: true}, scheduler.StatusCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.r); got != tt.want {
				t.Fatalf("Classify(%+v) = %s, want %s", tt.r, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		v    string
		want time.Duration
	}{
		{"seconds", "120", 120 * time.Second},
		{"seconds with spaces", "  5 ", 5 * time.Second},
		{"one second", "1", time.Second},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"huge seconds capped", "99999999999", scheduler.MaxBackoffLimit},
		{"overflowing seconds are capped", "999999999999999999999999", scheduler.MaxBackoffLimit},
		{"empty", "", 0},
		{"garbage", "soon", 0},
		{"fraction", "1.5", 0},
		{"IMF-fixdate", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"RFC 850 date", now.Add(time.Hour).Format(time.RFC850), time.Hour},
		{"asctime date", now.Add(2 * time.Minute).Format(time.ANSIC), 2 * time.Minute},
		{"date now", now.Format(http.TimeFormat), 0},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"RFC 3339 is not an HTTP date", now.Add(time.Hour).Format(time.RFC3339), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := parseRetryAfter(tt.v, now); got != tt.want {
				t.Fatalf("parseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
