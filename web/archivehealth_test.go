package web

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDashboardArchiveState: the Archive card says whether the archive is
// up, or down since when, or not configured; without Config.ArchiveHealth
// it has no state line.
func TestDashboardArchiveState(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var h ArchiveHealth
	set := func(v ArchiveHealth) { mu.Lock(); h = v; mu.Unlock() }
	e := setup(t, open, func(c *Config) {
		c.ArchiveHealth = func(context.Context) ArchiveHealth { mu.Lock(); defer mu.Unlock(); return h }
	})
	since := e.clock.t.Add(-90 * time.Second)
	tests := []struct {
		name  string
		h     ArchiveHealth
		want  []string
		class string
	}{
		{"up", ArchiveHealth{Configured: true, Up: true}, []string{"up"}, "badge-completed"},
		{"down", ArchiveHealth{Configured: true, Up: false, Since: since}, []string{"down", "since", "down since 2025-03-14T15:07:56.535Z 1m ago"}, "badge-failed"},
		{"none", ArchiveHealth{}, []string{"not configured"}, "badge-cancelled"},
	}
	for _, tt := range tests {
		set(tt.h)
		r := e.get("/admin/")
		wantStatus(t, r, http.StatusOK)
		dd := byID(t, r.doc, "archive-state")
		got := text(dd)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: archive state %q lacks %q", tt.name, got, w)
			}
		}
		if !strings.Contains(r.body, tt.class) {
			t.Errorf("%s: no %s badge", tt.name, tt.class)
		}
	}

	plain := setup(t, open)
	if r := plain.get("/admin/"); hasID(r.doc, "archive-state") {
		t.Error("a state line without Config.ArchiveHealth")
	}
}
