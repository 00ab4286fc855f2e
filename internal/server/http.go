package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
	"github.com/cassata/cassata/web"
)

// httpDeps are what the HTTP handler serves from.
type httpDeps struct {
	store       *redisstore.Store
	arch        *archive.Store // nil without an archive
	archHealth  *archiveHealth // nil without an archive
	sched       *scheduler.Scheduler
	apps        *tenant.Apps
	msgs        *topic.Messages
	subs        *topic.Subscriptions
	schedules   *schedule.Schedules
	flows       *flow.Flows
	reg         *prometheus.Registry
	metrics     *scheduler.Metrics
	httpMetrics *api.HTTPMetrics
	maxAttempts int
	log         *slog.Logger
	tracer      trace.TracerProvider // a no-op one when tracing is off
}

// newHandler is the HTTP handler of mode: a worker serves health and
// metrics only; server and dev serve the JSON API and the admin UI too.
//
// Readiness: a server's is Redis alone (issue 16): it creates, reads and
// cancels live events with Redis only, so taking it out of a load balancer
// for an archive outage would only add an outage; the archive's state is
// reported beside the checks (/readyz "archive", cassata_archive_up, the
// dashboard) and its lag by cassata_archive_lag_seconds. A worker's and
// dev's are Redis and the archive (API.md §2): archiving is a worker's duty,
// and no traffic is routed to it by readiness; it keeps delivering
// meanwhile, finished events waiting in the outbox.
func newHandler(mode string, cfg config.Config, d httpDeps) (http.Handler, error) {
	ready := func(ctx context.Context) map[string]error {
		checks := map[string]error{"redis": d.store.Ping(ctx)}
		if mode != ModeServer && d.archHealth != nil && d.archHealth.arch != nil {
			if up, _ := d.archHealth.check(ctx); !up {
				checks["archive"] = errArchiveDown
			}
		}
		return checks
	}
	details := func(ctx context.Context) map[string]any {
		return map[string]any{"archive_outbox": archiveLag(ctx, d.store)}
	}
	a := api.New(api.Config{Scheduler: d.sched, DefaultMaxAttempts: d.maxAttempts, Ready: ready, Details: details, Archive: d.archHealth.readyz, HTTPMetrics: d.httpMetrics,
		Gatherer: d.reg, Metrics: d.metrics, Logger: d.log, Apps: d.apps, RateLimit: rateLimit(cfg.RateLimit),
		Messages: d.msgs, Subscriptions: d.subs, Schedules: d.schedules, Flows: d.flows, TracerProvider: d.tracer})
	var handler http.Handler
	if mode == "worker" {
		r := gin.New()
		r.Use(d.httpMetrics.Middleware())
		a.Process(r)
		handler = r
	} else {
		var auth api.Authorizer
		if cfg.Auth == "on" {
			auth = api.NewKeyAuth(d.apps, api.KeyAuthConfig{AdminToken: cfg.AdminToken,
				JWT: tenant.JWTPolicy{MaxLifetime: cfg.JWTMaxLifetime}})
		}
		engine := a.Engine(auth)
		var topics *web.Topics
		if d.subs != nil && d.msgs != nil {
			topics = &web.Topics{Subscriptions: d.subs, Messages: d.msgs}
		}
		var schedules web.Schedules // a nil *schedule.Schedules must stay a nil interface
		if d.schedules != nil {
			schedules = d.schedules
		}
		var flows web.Flows // likewise for a nil *flow.Flows
		if d.flows != nil {
			flows = d.flows
		}
		ui, err := web.New(web.Config{Backend: d.sched, Apps: d.apps, Topics: topics, Schedules: schedules, Flows: flows, Password: cfg.AdminPassword,
			ArchiveHealth: d.archHealth.dashboard, Open: mode == "dev", BasePath: cfg.BasePath, SessionSalt: "cassata:" + cfg.Namespace, Logger: d.log})
		if err != nil {
			return nil, fmt.Errorf("admin UI: %w", err)
		}
		ui.Mount(engine)
		handler = engine
	}
	return handler, nil
}

// rateLimit turns CASSATA_RATE_LIMIT (0: off) into api.Config.RateLimit (negative: off).
func rateLimit(perSecond int) float64 {
	if perSecond <= 0 {
		return -1
	}
	return float64(perSecond)
}
