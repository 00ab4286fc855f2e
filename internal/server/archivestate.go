package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/web"
)

// archiveCheckEvery is how long one ping of the archive stands for: a probe
// every second, a scrape and a dashboard view share it.
const archiveCheckEvery = time.Second

// archivePingTimeout bounds one ping of the archive.
const archivePingTimeout = 2 * time.Second

// pinger is the archive as archiveHealth sees it (*archive.Store).
type pinger interface {
	Ping(ctx context.Context) error
}

// archiveHealth tracks whether the archive answers. It does not decide
// readiness (Redis alone does: creates, reads and cancels of live events
// need nothing else, and workers deliver while finished events wait in the
// outbox); it reports the archive separately, in /readyz's "archive", the
// cassata_archive_up gauge and the admin dashboard, and logs each change
// with the error (which /readyz never shows).
type archiveHealth struct {
	arch pinger // nil: no archive configured
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex // held across a ping, so concurrent callers share it
	checked time.Time  // zero: never checked
	up      bool
	since   time.Time // last change, zero before the first
	err     string
}

var archiveUpDesc = prometheus.NewDesc("cassata_archive_up",
	"1 when this process reaches the archive database, 0 when it does not (absent without an archive). "+
		"Readiness does not depend on it: finished events wait in the outbox meanwhile.", nil, nil)

func newArchiveHealth(arch pinger, log *slog.Logger) *archiveHealth {
	return &archiveHealth{arch: arch, log: log, now: time.Now}
}

// check pings the archive unless a ping younger than archiveCheckEvery
// answered already, and returns whether it is up and since when.
func (h *archiveHealth) check(ctx context.Context) (up bool, since time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if !h.checked.IsZero() && now.Sub(h.checked) < archiveCheckEvery {
		return h.up, h.since
	}
	pctx, cancel := context.WithTimeout(ctx, archivePingTimeout)
	err := h.arch.Ping(pctx)
	cancel()
	if ctx.Err() != nil && err != nil {
		// The caller gave up (a client went away): that says nothing about the archive.
		return h.up, h.since
	}
	first := h.checked.IsZero()
	h.checked = now
	switch {
	case err == nil && (first || !h.up):
		if !first {
			h.log.Info("archive available again")
			h.since = now
		}
		h.up, h.err = true, ""
	case err != nil && (first || h.up || h.err != err.Error()):
		h.log.Warn("archive unavailable; events are still created and delivered, finished ones wait in the outbox", "err", err)
		if first || h.up {
			h.since = now
		}
		h.up, h.err = false, err.Error()
	}
	return h.up, h.since
}

// errArchiveDown is a worker's failing "archive" readiness check; the
// error itself is in the log and in /readyz "archive".
var errArchiveDown = errors.New("archive unavailable")

// readyz is the "archive" of /readyz.
func (h *archiveHealth) readyz(ctx context.Context) api.ArchiveState {
	if h == nil || h.arch == nil {
		return api.ArchiveState{Status: "not_configured"}
	}
	up, since := h.check(ctx)
	s := api.ArchiveState{Configured: true, Up: up, Status: "ok"}
	if !up {
		s.Status = "unavailable"
	}
	if !since.IsZero() {
		s.Since = since.UTC().Format(time.RFC3339)
	}
	return s
}

// dashboard is the archive's line on the admin dashboard.
func (h *archiveHealth) dashboard(ctx context.Context) web.ArchiveHealth {
	if h == nil || h.arch == nil {
		return web.ArchiveHealth{}
	}
	up, since := h.check(ctx)
	return web.ArchiveHealth{Configured: true, Up: up, Since: since}
}

// Describe and Collect make the cassata_archive_up gauge.
func (h *archiveHealth) Describe(ch chan<- *prometheus.Desc) { ch <- archiveUpDesc }

func (h *archiveHealth) Collect(ch chan<- prometheus.Metric) {
	if h.arch == nil {
		return
	}
	v := 0.0
	if up, _ := h.check(context.Background()); up {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(archiveUpDesc, prometheus.GaugeValue, v)
}
