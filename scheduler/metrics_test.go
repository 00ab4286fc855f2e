package scheduler_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/scheduler"
)

// TestMetricsLabelsPresentAtZero: every outcome of cassata_deliveries_total
// and every route of cassata_events_scheduled_total is exported at 0 before
// it first happens, so rate() and alerts see the series from the start.
func TestMetricsLabelsPresentAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	scheduler.NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"cassata_deliveries_total":       scheduler.DeliveryOutcomes,
		"cassata_events_scheduled_total": scheduler.ScheduledRoutes,
	}
	for _, mf := range mfs {
		values, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		got := map[string]bool{}
		for _, m := range mf.GetMetric() {
			if m.GetCounter().GetValue() != 0 {
				t.Errorf("%s: %v is not 0", mf.GetName(), m)
			}
			got[m.GetLabel()[0].GetValue()] = true
		}
		for _, v := range values {
			if !got[v] {
				t.Errorf("%s: label value %q not exported before it happens", mf.GetName(), v)
			}
		}
		delete(want, mf.GetName())
	}
	for name := range want {
		t.Errorf("%s not exported at all", name)
	}
}
