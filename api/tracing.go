package api

import (
	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/cassata/cassata/internal/tracing"
)

// traceRequests returns the middleware that gives every API request a
// server span (otelgin; named by the route template, e.g. "POST
// /v1/events"), continuing the trace of the caller's traceparent. The span
// is in the request's context, so a create stores its traceparent with the
// event (scheduler.Event.TraceParent) and the deliveries join the trace.
// Nil when tracing is off: then the engine has no such middleware at all.
// Probes and scrapes (/healthz, /readyz, /metrics) are not traced.
func (a *API) traceRequests() gin.HandlerFunc {
	tp := a.cfg.TracerProvider
	if !tracing.Enabled(tp) {
		return nil
	}
	return otelgin.Middleware("cassata",
		otelgin.WithTracerProvider(tp),
		otelgin.WithPropagators(tracing.Propagator),
		// Request metrics are Prometheus's (/metrics), not OpenTelemetry's.
		otelgin.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgin.WithGinFilter(func(c *gin.Context) bool {
			switch c.FullPath() {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
	)
}
