package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cassata/cassata/internal/version"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/store/redisstore"
)

// clusterWide ends the HELP of every gauge read from Redis at scrape time:
// every process reports the same value, so a sum over processes counts it
// once per process.
const clusterWide = " Cluster-wide (read from Redis, the same on every process): aggregate with max."

// backlogCollector reports, at scrape time, figures read from Redis.
type backlogCollector struct{ store *redisstore.Store }

var (
	pendingDesc   = prometheus.NewDesc("cassata_pending_events", "PENDING events in Redis."+clusterWide, nil, nil)
	outboxDesc    = prometheus.NewDesc("cassata_archive_outbox_entries", "Outbox entries not yet archived."+clusterWide, nil, nil)
	archiveLagDes = prometheus.NewDesc("cassata_archive_lag_seconds", "Age of the oldest outbox entry not yet archived."+clusterWide, nil, nil)
	dueDesc       = prometheus.NewDesc("cassata_due_backlog", "PENDING events whose due time has passed (not yet claimed)."+clusterWide, nil, nil)
	workersDesc   = prometheus.NewDesc("cassata_workers", "Workers with a recent heartbeat."+clusterWide, nil, nil)
)

func (b backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- dueDesc
	ch <- outboxDesc
	ch <- archiveLagDes
	ch <- workersDesc
}

func (b backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := time.Now()
	live, err := b.store.Live(ctx, now)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(live.Pending))
	ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, float64(live.DueSoon))
	if n, oldest, err := b.store.OutboxLag(ctx); err == nil {
		lag := 0.0
		if !oldest.IsZero() {
			lag = max(0, time.Since(oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(archiveLagDes, prometheus.GaugeValue, lag)
	}
	if ws, err := b.store.Workers(ctx, now.Add(-scheduler.WorkerAlive)); err == nil {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(len(ws)))
	}
}

// newRegistry is a process's registry with what every process exports
// from its first moment: Go and process collectors and cassata_build_info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	v := version.Get()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cassata_build_info",
		Help: "Always 1; the labels say which build of Cassata this process runs.",
	}, []string{"version", "commit", "go_version"})
	info.WithLabelValues(v.Version, v.Commit, v.GoVersion).Set(1)
	reg.MustRegister(info)
	return reg
}

// ssrfRefusals counts destinations the SSRF guard refused, at create
// (stage "create") and at delivery, after resolution ("delivery"); both
// stages are present from the first scrape.
func ssrfRefusals(reg prometheus.Registerer) func(stage string) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cassata_ssrf_refusals_total",
		Help: "Destinations refused by the SSRF guard (CASSATA_BLOCK_PRIVATE), at create and at delivery.",
	}, []string{"stage"})
	c.WithLabelValues(delivery.StageCreate)
	c.WithLabelValues(delivery.StageDelivery)
	reg.MustRegister(c)
	return func(stage string) { c.WithLabelValues(stage).Inc() }
}
