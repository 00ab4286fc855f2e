package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcome label values of cassata_deliveries_total.
const (
	OutcomeCompleted          = "completed"
	OutcomeFailed             = "failed"
	OutcomeRetry              = "retry"
	OutcomeServiceUnavailable = "service_unavailable"
	// OutcomeStale: the lease was lost before the outcome was recorded.
	OutcomeStale = "stale"
)

// DeliveryOutcomes are every outcome label value, present (at 0) from the
// first scrape so that rate() and alerts see them before they happen.
var DeliveryOutcomes = []string{OutcomeCompleted, OutcomeFailed, OutcomeRetry, OutcomeServiceUnavailable, OutcomeStale}

// ScheduledRoutes are the route label values of cassata_events_scheduled_total.
var ScheduledRoutes = []string{"cassata", "v1", "v1_batch"}

// Metrics are the scheduler's Prometheus collectors. A nil *Metrics records nothing.
type Metrics struct {
	Scheduled  *prometheus.CounterVec
	Deliveries *prometheus.CounterVec
	Latency    prometheus.Histogram
	Lateness   prometheus.Histogram
	Reaped     prometheus.Counter
	// Archived counts outbox records written to the archive.
	Archived prometheus.Counter
	// ArchiveErrors counts failed archive batches (they are retried).
	ArchiveErrors prometheus.Counter
}

// NewMetrics registers the scheduler's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cassata_events_scheduled_total", Help: "Events accepted for scheduling.",
		}, []string{"route"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cassata_deliveries_total", Help: "Delivery attempts by outcome (completed, failed, retry, service_unavailable, stale).",
		}, []string{"outcome"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cassata_delivery_duration_seconds", Help: "Duration of one delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		Lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cassata_delivery_lateness_seconds", Help: "Time from due to the start of the first attempt.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		Reaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cassata_leases_expired_total", Help: "Events recovered after their lease expired.",
		}),
		Archived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cassata_archived_records_total", Help: "Outbox records written to the archive.",
		}),
		ArchiveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cassata_archive_errors_total", Help: "Archive batches that failed and will be retried.",
		}),
	}
	for _, o := range DeliveryOutcomes {
		m.Deliveries.WithLabelValues(o)
	}
	for _, r := range ScheduledRoutes {
		m.Scheduled.WithLabelValues(r)
	}
	reg.MustRegister(m.Scheduled, m.Deliveries, m.Latency, m.Lateness, m.Reaped, m.Archived, m.ArchiveErrors)
	return m
}

func (m *Metrics) scheduled(route string) {
	if m != nil {
		m.Scheduled.WithLabelValues(route).Inc()
	}
}

// CountScheduled records an accepted create.
func (m *Metrics) CountScheduled(route string) { m.scheduled(route) }
