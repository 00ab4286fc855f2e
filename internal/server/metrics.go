package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/store/redisstore"
)

// backlogCollector reports the due backlog at scrape time.
type backlogCollector struct{ store *redisstore.Store }

var (
	pendingDesc   = prometheus.NewDesc("cassata_pending_events", "PENDING events in Redis.", nil, nil)
	outboxDesc    = prometheus.NewDesc("cassata_archive_outbox_entries", "Outbox entries not yet archived.", nil, nil)
	archiveLagDes = prometheus.NewDesc("cassata_archive_lag_seconds", "Age of the oldest outbox entry not yet archived.", nil, nil)
	dueDesc       = prometheus.NewDesc("cassata_due_backlog", "PENDING events whose due time has passed (not yet claimed).", nil, nil)
)

func (b backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- dueDesc
	ch <- outboxDesc
	ch <- archiveLagDes
}

func (b backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	live, err := b.store.Live(ctx, time.Now())
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
}
