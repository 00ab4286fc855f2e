package archive_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
)

// BenchmarkWrite measures Write in the archiver's steady state: every batch
// inserts half a batch of new runs and finishes the runs of the batch before
// (an upsert of an existing row plus an attempt row), at 256 records per
// batch and at the archiver's default of 500 (whose row counts are not
// powers of two: several statements per table). It reports ns/record
// (wall), cpu-ns/record (this process: the worker's cost) and
// allocs/record; the table grows as b.N does.
//
//	go test ./store/archive -run '^$' -bench BenchmarkWrite -benchtime 200x
//
// The merged cases are what the archiver writes when it holds a create
// until its final outcome comes (scheduler/worker's HoldCreates): every
// batch has the creates and the finals of the same runs, one row per run.
// Each run has two records in both shapes, so cpu-ns/record compares the
// cost per event directly.
func BenchmarkWrite(b *testing.B) {
	for _, merged := range []bool{false, true} {
		shape := "apart"
		if merged {
			shape = "merged"
		}
		for _, batch := range []int{256, 500} {
			b.Run(fmt.Sprintf("SQLite/%s/batch=%d", shape, batch), func(b *testing.B) {
				benchmarkWrite(b, openBenchStore(b, "sqlite://"+filepath.Join(b.TempDir(), "archive.db")), batch, merged, sequentialID)
			})
			b.Run(fmt.Sprintf("MariaDB/%s/batch=%d", shape, batch), func(b *testing.B) {
				mysqltest.Shared(b) // skips when no server is installed
				benchmarkWrite(b, openBenchStore(b, mysqltest.NewDatabase(b)), batch, merged, sequentialID)
			})
		}
	}
}

// BenchmarkWriteRandomIDs is BenchmarkWrite at the archiver's default batch
// with event ids as clients pick them (UUIDs, order numbers: unrelated to
// creation order), so each new run's keys on the event id land at a random
// place instead of after the previous run's.
//
//	go test ./store/archive -run '^$' -bench BenchmarkWriteRandomIDs -benchtime 200x
func BenchmarkWriteRandomIDs(b *testing.B) {
	for _, shape := range []string{"apart", "merged"} {
		b.Run("SQLite/"+shape, func(b *testing.B) {
			benchmarkWrite(b, openBenchStore(b, "sqlite://"+filepath.Join(b.TempDir(), "archive.db")), 500, shape == "merged", randomID)
		})
		b.Run("MariaDB/"+shape, func(b *testing.B) {
			mysqltest.Shared(b)
			benchmarkWrite(b, openBenchStore(b, mysqltest.NewDatabase(b)), 500, shape == "merged", randomID)
		})
	}
}

// sequentialID is the event id of the i-th run: evt-00000042.
func sequentialID(i int) string { return fmt.Sprintf("evt-%08d", i) }

// randomID is a UUID-shaped event id that is the same for the same i on
// every run (a hash of i), so runs compare.
func randomID(i int) string {
	h := uint64(i+1) * 0x9E3779B97F4A7C15
	h ^= h >> 29
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff, uint16(h>>4)&0xfff, h*0xBF58476D1CE4E5B9&0xffffffffffff)
}

func openBenchStore(b *testing.B, dsn string) *archive.Store {
	b.Helper()
	s, err := archive.Open(context.Background(), dsn)
	if err != nil {
		b.Fatalf("Open(%s): %v", archive.RedactDSN(dsn), err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatalf("Migrate: %v", err)
	}
	return s
}

func benchmarkWrite(b *testing.B, s *archive.Store, size int, merged bool, id func(int) string) {
	ctx := context.Background()
	half := size / 2
	next := 0 // runs created so far
	batch := func() []scheduler.Record {
		recs := make([]scheduler.Record, 0, size)
		for i := next; i < next+half; i++ {
			recs = append(recs, benchCreate(i, id(i)))
		}
		// Apart: the finals of the runs the batch before created; merged:
		// those of the runs this batch creates.
		from, to := max(0, next-half), next
		if merged {
			from, to = next, next+half
		}
		for i := from; i < to; i++ {
			recs = append(recs, benchFinal(i, id(i)))
		}
		next += half
		return recs
	}
	// The first batch has no finals yet; write it before timing.
	if err := s.Write(ctx, batch()); err != nil {
		b.Fatalf("Write: %v", err)
	}
	timeWrites(b, s, batch)
}

// timeWrites writes b.N batches made by batch, timing only the writes, and
// reports ns/record (wall), cpu-ns/record (this process: the worker's cost)
// and allocs/record.
func timeWrites(b *testing.B, s *archive.Store, batch func() []scheduler.Record) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var records int
	var allocs uint64
	var before, after runtime.MemStats
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		recs := batch()
		runtime.ReadMemStats(&before)
		cpu0 := processCPU(b)
		b.StartTimer()
		if err := s.Write(ctx, recs); err != nil {
			b.Fatalf("Write: %v", err)
		}
		b.StopTimer()
		cpu += processCPU(b) - cpu0
		runtime.ReadMemStats(&after)
		allocs += after.Mallocs - before.Mallocs
		records += len(recs)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	b.ReportMetric(float64(allocs)/float64(records), "allocs/record")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(records), "cpu-ns/record")
}

// processCPU is the user+system CPU time this process has used: what Write
// costs the worker, without the database server's share on MariaDB (and
// less sensitive than wall time to other load on a shared machine).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const benchT0 = int64(1_760_000_000_000)

// benchEvent is a realistic request: an ~80-byte URL with a query, two
// headers and a 100-byte JSON body (on the final only; a create record
// does not carry the body).
func benchEvent(i int, id string) *scheduler.Event {
	created := benchT0 + int64(i)
	return &scheduler.Event{
		App:         "bench",
		ID:          id,
		URL:         fmt.Sprintf("https://hooks.example.com/v2/orders/%s/notify?tenant=acme&attempt=auto", id),
		Method:      "POST",
		Headers:     map[string]string{"Content-Type": "application/json", "X-Request-Id": id},
		DueAt:       time.UnixMilli(created + 1_000),
		Status:      scheduler.StatusPending,
		MaxAttempts: 10,
		Timeout:     30 * time.Second,
		MinBackoff:  time.Second,
		MaxBackoff:  time.Hour,
		CreatedAt:   time.UnixMilli(created),
		UpdatedAt:   time.UnixMilli(created),
	}
}

func benchCreate(i int, id string) scheduler.Record {
	created := benchT0 + int64(i)
	return scheduler.Record{
		Shard: i % 16, StreamID: fmt.Sprintf("%d-0", created), Kind: scheduler.RecordCreate,
		App: "bench", ID: id, CreatedMS: created, UpdatedMS: created,
		Status: scheduler.StatusPending, Event: benchEvent(i, id),
	}
}

// benchBody is 100 bytes of JSON.
var benchBody = []byte(`{"order":{"id":"ord-000000042","total":"129.90","currency":"EUR"},"customer":"c-81","state":"paid"}` + " ")

func benchFinal(i int, id string) scheduler.Record {
	created := benchT0 + int64(i)
	at := created + 1_050
	ev := benchEvent(i, id)
	ev.Body = benchBody
	ev.Status = scheduler.StatusCompleted
	ev.Attempts = 1
	ev.LastStatusCode = 200
	ev.Worker = "worker-1"
	ev.UpdatedAt = time.UnixMilli(at)
	ev.FinishedAt = time.UnixMilli(at)
	return scheduler.Record{
		Shard: i % 16, StreamID: fmt.Sprintf("%d-2", at), Kind: scheduler.RecordFinal,
		App: "bench", ID: ev.ID, CreatedMS: created, UpdatedMS: at, Status: scheduler.StatusCompleted, Event: ev,
		Attempt: &scheduler.Attempt{Attempt: 1, At: at, StatusCode: 200, DurationMS: 45, Worker: "worker-1", Response: `{"ok":true}`},
	}
}

// BenchmarkWriteCreates measures Write for batches of create records only,
// shaped as the outbox's create entries are (url, method, due time: the
// request's other parts come with the final record), with UUID-shaped ids:
// what the archiver writes while clients create events ahead of their due
// times (an ingest, the creation of a burst). The table grows as b.N does,
// and so does the cost of a create (its id lands on a random page of the
// key): compare runs of the same -benchtime.
//
//	go test ./store/archive -run '^$' -bench BenchmarkWriteCreates -benchtime 200x
func BenchmarkWriteCreates(b *testing.B) {
	for _, size := range []int{500, 2000} {
		b.Run(fmt.Sprintf("SQLite/%d", size), func(b *testing.B) {
			benchmarkWriteCreates(b, openBenchStore(b, "sqlite://"+filepath.Join(b.TempDir(), "archive.db")), size)
		})
		b.Run(fmt.Sprintf("MariaDB/%d", size), func(b *testing.B) {
			mysqltest.Shared(b)
			benchmarkWriteCreates(b, openBenchStore(b, mysqltest.NewDatabase(b)), size)
		})
	}
}

func benchmarkWriteCreates(b *testing.B, s *archive.Store, size int) {
	next := 0
	batch := func() []scheduler.Record {
		recs := make([]scheduler.Record, 0, size)
		for i := next; i < next+size; i++ {
			r := benchCreate(i, randomID(i))
			ev := r.Event
			r.Event = &scheduler.Event{App: ev.App, ID: ev.ID, URL: ev.URL, Method: ev.Method, DueAt: ev.DueAt,
				Status: ev.Status, CreatedAt: ev.CreatedAt, UpdatedAt: ev.UpdatedAt}
			recs = append(recs, r)
		}
		next += size
		return recs
	}
	timeWrites(b, s, batch)
}
