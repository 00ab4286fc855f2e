package server

import (
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneGC: the roles raise the GC target when GOGC is unset and leave
// the operator's GOGC alone.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	log := slog.New(slog.DiscardHandler)

	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	tuneGC(log)
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC=50 set: GC percent %d after tuneGC, want 50", got)
	}

	// t.Setenv restores GOGC when the test ends; unset it until then.
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	debug.SetGCPercent(100)
	tuneGC(log)
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC unset: GC percent %d after tuneGC, want %d", got, gcPercent)
	}
}
