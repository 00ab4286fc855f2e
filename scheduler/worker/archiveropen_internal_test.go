package worker

import (
	"testing"

	"github.com/cassata/cassata/scheduler"
)

// TestLastOpen: a packed entry is complete once each of its records was
// written, whatever the order; a record written twice (its entry read
// again, e.g. taken back after a stalled round) counts once, so it cannot
// complete the entry while another record is still held.
func TestLastOpen(t *testing.T) {
	a := &Archiver{open: map[entryKey]*openEntry{}}
	rec := func(id string, part int) *scheduler.Record {
		return &scheduler.Record{Shard: 3, StreamID: id, Part: part, Parts: 3}
	}
	steps := []struct {
		r    *scheduler.Record
		last bool
	}{
		{rec("1-0", 2), false},
		{rec("1-0", 0), false},
		{rec("1-0", 0), false}, // again: still waiting for part 1
		{rec("2-0", 0), false}, // another entry
		{rec("1-0", 1), true},
		{rec("1-0", 1), false}, // a new reading of the entry starts over
	}
	for i, s := range steps {
		if got := a.lastOpen(s.r); got != s.last {
			t.Fatalf("step %d (entry %s part %d): lastOpen = %v, want %v", i, s.r.StreamID, s.r.Part, got, s.last)
		}
	}
	if len(a.open) != 2 {
		t.Fatalf("%d entries open, want 2 (2-0, and 1-0 read again)", len(a.open))
	}
}
