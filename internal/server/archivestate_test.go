package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/internal/testproc"
)

// fakeArchive answers Ping with err and counts the pings.
type fakeArchive struct {
	mu    sync.Mutex
	err   error
	pings int
}

func (f *fakeArchive) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pings++
	return f.err
}

func (f *fakeArchive) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

// gaugeValue is cassata_archive_up as reg gathers it (-1: absent).
func gaugeValue(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cassata_archive_up" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestArchiveHealth: the archive's state follows its pings, one ping
// stands for archiveCheckEvery, each change is logged once with its error
// (which /readyz never shows) and dates the state; the gauge follows.
func TestArchiveHealth(t *testing.T) {
	t.Parallel()
	fa := &fakeArchive{}
	logs := &testproc.Buffer{}
	h := newArchiveHealth(fa, slog.New(slog.NewJSONHandler(logs, nil)))
	now := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	ctx := context.Background()

	if s := h.readyz(ctx); !s.Configured || !s.Up || s.Status != "ok" || s.Since != "" {
		t.Fatalf("first check, archive up: %+v", s)
	}
	if v := gaugeValue(t, reg); v != 1 {
		t.Errorf("cassata_archive_up = %v, want 1", v)
	}
	if fa.pings != 1 {
		t.Errorf("%d pings within %s, want 1 (shared)", fa.pings, archiveCheckEvery)
	}

	secret := errors.New("dial tcp 10.9.8.7:3306: connect: connection refused")
	fa.set(secret)
	now = now.Add(archiveCheckEvery)
	down := now
	s := h.readyz(ctx)
	if s.Up || s.Status != "unavailable" || s.Since != down.Format(time.RFC3339) {
		t.Fatalf("archive down: %+v", s)
	}
	if v := gaugeValue(t, reg); v != 0 {
		t.Errorf("cassata_archive_up = %v, want 0", v)
	}
	for range 3 {
		now = now.Add(archiveCheckEvery)
		h.readyz(ctx)
	}
	if n := strings.Count(logs.String(), `"msg":"archive unavailable`); n != 1 {
		t.Errorf("%d 'archive unavailable' lines for one outage, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "10.9.8.7:3306") {
		t.Errorf("the log lacks the error:\n%s", logs)
	}
	if d := h.dashboard(ctx); !d.Configured || d.Up || !d.Since.Equal(down) {
		t.Errorf("dashboard while down: %+v, want down since %s", d, down)
	}

	fa.set(nil)
	now = now.Add(archiveCheckEvery)
	if s := h.readyz(ctx); !s.Up || s.Since != now.Format(time.RFC3339) {
		t.Errorf("archive back: %+v", s)
	}
	if !strings.Contains(logs.String(), `"msg":"archive available again"`) {
		t.Errorf("recovery not logged:\n%s", logs)
	}

	var none *archiveHealth
	if s := none.readyz(ctx); s.Configured || s.Status != "not_configured" {
		t.Errorf("without an archive: %+v", s)
	}
}

// TestClusterWideGaugesSaySo: every gauge read from Redis (the same value
// on every process) says in its HELP how to aggregate it.
func TestClusterWideGaugesSaySo(t *testing.T) {
	t.Parallel()
	ch := make(chan *prometheus.Desc, 16)
	backlogCollector{}.Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
		n++
		if !strings.Contains(d.String(), "Cluster-wide") || !strings.Contains(d.String(), "aggregate with max") {
			t.Errorf("%s: HELP does not say it is cluster-wide", d)
		}
	}
	if n < 5 {
		t.Errorf("%d cluster-wide gauges, want pending, due, outbox, lag and workers", n)
	}
}

// TestRegistryHasBuildInfo: cassata_build_info is 1 with the version,
// commit and Go version, from the process's first scrape.
func TestRegistryHasBuildInfo(t *testing.T) {
	t.Parallel()
	mfs, err := newRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cassata_build_info" {
			continue
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["version"] == "" || labels["commit"] == "" || !strings.HasPrefix(labels["go_version"], "go") {
			t.Errorf("cassata_build_info = %v %v", labels, m.GetGauge().GetValue())
		}
		return
	}
	t.Error("no cassata_build_info")
}
