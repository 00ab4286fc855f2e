package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// memOutbox is an outbox in memory: an endless, steady stream of
// deliveries (each event's create, then its final lag records later),
// served from a ring of records made before the benchmark's timer starts.
// The ring is small, so that the benchmark's live heap (which every GC
// marks) stays like a worker's; its runs repeat, far enough apart not to
// meet. Acknowledging costs nothing.
type memOutbox struct {
	shards int
	ring   []scheduler.Record
	next   int
}

func newMemOutbox(shards, ring, lag int) *memOutbox {
	o := &memOutbox{shards: shards, ring: make([]scheduler.Record, ring)}
	events := ring / 2
	due := &scheduler.Event{DueAt: time.UnixMilli(1_760_000_000_000)}
	for i := range o.ring {
		// Even positions create event i/2; odd ones finish the event
		// created lag records before.
		ev := i / 2
		kind, status := scheduler.RecordCreate, scheduler.StatusPending
		if i%2 == 1 {
			ev = (i/2 - lag/2 + events) % events
			kind, status = scheduler.RecordFinal, scheduler.StatusCompleted
		}
		created := int64(1_760_000_000_000 + ev)
		o.ring[i] = scheduler.Record{Shard: i % shards, StreamID: fmt.Sprintf("%d-%d", created, i), Kind: kind,
			App: "bench", ID: fmt.Sprintf("evt-%08d", ev), CreatedMS: created, UpdatedMS: created + int64(i%2),
			Status: status, Event: due}
	}
	return o
}

func (o *memOutbox) Shards() int { return o.shards }

// ReadOutbox returns the next records of the stream, whatever the shard
// (the archiver does not care which shard a run's records come from).
func (o *memOutbox) ReadOutbox(_ context.Context, _ int, _ string, pending bool, count int) ([]scheduler.Record, error) {
	if pending {
		return nil, nil
	}
	start := o.next % len(o.ring)
	end := min(start+count, len(o.ring))
	o.next += end - start
	return o.ring[start:end:end], nil
}

func (o *memOutbox) ClaimOutbox(context.Context, int, string, time.Duration, int) ([]scheduler.Record, error) {
	return nil, nil
}

func (o *memOutbox) AckOutbox(context.Context, int, []scheduler.Record) error { return nil }

type nopWriter struct {
	rows int
	runs map[runKey]bool
}

// Write counts the runs of a batch: the rows the archive upserts.
func (w *nopWriter) Write(_ context.Context, recs []scheduler.Record) error {
	clear(w.runs)
	for i := range recs {
		w.runs[runOf(&recs[i])] = true
	}
	w.rows += len(w.runs)
	return nil
}

// BenchmarkArchiverRound measures the archiver's own work per record
// (reading excluded: the outbox is in memory and the writer does nothing),
// with and without holding creates, in a steady stream where each final
// follows its create by 100 records (a batch of 500 has most pairs
// together; the hold catches the rest). rows/event is the archive rows
// written per event.
//
//	go test ./scheduler/worker -run '^$' -bench BenchmarkArchiverRound -benchtime 2000x
func BenchmarkArchiverRound(b *testing.B) {
	for _, hold := range []time.Duration{-1, time.Second} {
		b.Run(fmt.Sprintf("hold=%s", max(hold, 0)), func(b *testing.B) {
			out := newMemOutbox(4, 20_000, 100)
			w := &nopWriter{runs: map[runKey]bool{}}
			a := NewArchiver(out, w, ArchiverConfig{Consumer: "bench", HoldCreates: hold})
			pending := make([]bool, out.shards)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			records := 0
			for i := range b.N {
				n, err := a.round(ctx, i%out.shards, pending, false)
				if err != nil {
					b.Fatal(err)
				}
				records += n
			}
			records -= a.hold.len() // still held: not written
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			b.ReportMetric(float64(w.rows)/float64(records/2), "rows/event")
		})
	}
}
