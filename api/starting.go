package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// StartingConfig configures Starting.
type StartingConfig struct {
	// Missing names the dependencies still being connected to, e.g.
	// ["redis"]. Required.
	Missing func() []string
	// Gatherer serves /metrics. Nil: prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// HTTPMetrics, when set, records the requests served while starting.
	HTTPMetrics *HTTPMetrics
}

// errStarting answers every API route while the process connects.
func errStarting(missing []string) error {
	return &httpError{status: http.StatusServiceUnavailable, detail: ErrorDetail{Code: "unavailable",
		Message: "starting: waiting for " + strings.Join(missing, ", ") + "; try again"}}
}

// Starting is what a process serves from the moment it listens until its
// dependencies answer and the real handler replaces it: /healthz 200 (the
// process is alive: a liveness probe must not restart it in a loop while
// Redis is away), /readyz 503 saying what is missing, /metrics, and for
// every other route a 503 JSON error (with Retry-After) in the shape of its
// route family, instead of a hang or a 404.
func Starting(cfg StartingConfig) http.Handler {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	r := gin.New()
	r.HandleMethodNotAllowed = false
	r.Use(cfg.HTTPMetrics.Middleware(), gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		checks := gin.H{}
		for _, name := range cfg.Missing() {
			checks[name] = "connecting"
		}
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "starting": true, "checks": checks})
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	r.NoRoute(func(c *gin.Context) {
		fam := v1Routes
		if strings.HasPrefix(c.Request.URL.Path, "/cassata/") {
			fam = cassataRoutes
		}
		writeError(c, fam, errStarting(cfg.Missing()))
	})
	return r
}
