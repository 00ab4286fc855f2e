package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// UnmatchedRoute is the route label of requests no route matched (404s of
// unknown paths): the raw path is never a label, so a scan of random paths
// cannot blow up the series count.
const UnmatchedRoute = "unmatched"

// HTTPMetrics are the HTTP server's Prometheus collectors: requests and
// their duration by route template (gin's FullPath), and the refusals an
// operator alerts on. Middleware records them; it is kept apart from the
// other middleware (tracing, rate limits) so each can change alone.
type HTTPMetrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authRefusals *prometheus.CounterVec
	rateLimited  prometheus.Counter
}

// NewHTTPMetrics registers the HTTP collectors with reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cassata_http_requests_total",
			Help: "HTTP requests served, by route template (\"" + UnmatchedRoute + "\" when no route matched), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cassata_http_request_duration_seconds",
			Help:    "Duration of HTTP requests, by route template and method.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		authRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cassata_auth_refusals_total",
			Help: "Requests refused for their credentials: 401 (missing or invalid) and 403 (not allowed), by code.",
		}, []string{"code"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cassata_rate_limited_total",
			Help: "Requests refused with 429 by a rate limit (per application, or admin logins).",
		}),
	}
	// Present from the first scrape, so rate() and alerts see a 0 before
	// the first refusal.
	m.authRefusals.WithLabelValues("401")
	m.authRefusals.WithLabelValues("403")
	reg.MustRegister(m.requests, m.duration, m.authRefusals, m.rateLimited)
	return m
}

// Middleware records every request once its handlers are done. Put it
// first, so it sees the final status of a panic's 500 too. A nil
// *HTTPMetrics records nothing.
func (m *HTTPMetrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if m == nil {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = UnmatchedRoute
		}
		method := metricMethod(c.Request.Method)
		status := c.Writer.Status()
		m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		switch status {
		case http.StatusUnauthorized, http.StatusForbidden:
			m.authRefusals.WithLabelValues(strconv.Itoa(status)).Inc()
		case http.StatusTooManyRequests:
			m.rateLimited.Inc()
		}
	}
}

// metricMethod bounds the method label: a client may send any token as
// the method.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
