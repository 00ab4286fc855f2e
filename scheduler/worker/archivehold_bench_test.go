package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// cpuWriter passes batches on to an archive and measures what the writes
// cost: the CPU time of the thread that runs them (the SQLite engine runs
// on the caller's goroutine, locked to its thread for the call) and the
// rows they upsert (a batch's distinct runs: Write merges the records of a
// run into one row).
type cpuWriter struct {
	next worker.ArchiveWriter
	mu   sync.Mutex
	cpu  time.Duration
	rows int
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (w *cpuWriter) Write(ctx context.Context, recs []scheduler.Record) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	err := w.next.Write(ctx, recs)
	cpu := threadCPU() - start
	runs := map[string]bool{}
	for _, r := range recs {
		runs[fmt.Sprintf("%s/%s/%d", r.App, r.ID, r.CreatedMS)] = true
	}
	w.mu.Lock()
	w.cpu += cpu
	w.rows += len(runs)
	w.mu.Unlock()
	return err
}

// BenchmarkArchiverHoldPromptDeliveries: events due at once, delivered
// about 50 ms after their create (a prompt delivery), archived into SQLite
// by an archiver with its defaults, with and without holding creates. It
// reports the archive rows upserted per event and the CPU time of the
// archive writes per event (the SQLite work in the worker). Each iteration
// creates 50 events and delivers the previous iteration's 50, 50 ms apart.
//
//	go test ./scheduler/worker -run '^$' -bench BenchmarkArchiverHoldPromptDeliveries -benchtime 60x
func BenchmarkArchiverHoldPromptDeliveries(b *testing.B) {
	for _, hold := range []time.Duration{-1, worker.DefaultArchiveHoldCreates} {
		b.Run(fmt.Sprintf("hold=%s", max(hold, 0)), func(b *testing.B) {
			ctx := context.Background()
			mr := miniredis.RunT(b)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			b.Cleanup(func() { _ = rdb.Close() })
			st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: "bench", Shards: 4, Retention: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			arch, err := archive.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "archive.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = arch.Close() })
			if err := arch.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			w := &cpuWriter{next: arch}
			actx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			a := worker.NewArchiver(st, w, worker.ArchiverConfig{Consumer: "bench", HoldCreates: hold})
			go func() {
				defer close(done)
				_ = a.Run(actx)
			}()

			const perStep = 50
			events := 0
			deliver := func() {
				now := time.Now()
				for sh := range 4 {
					c, err := st.Claim(ctx, sh, "w", 1000, time.Minute, now)
					if err != nil {
						b.Fatal(err)
					}
					for _, ev := range c.Events {
						l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: "w", Attempt: ev.Attempts}
						o := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{
							Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 200, DurationMS: 3, Worker: "w"}}
						if ok, err := st.Finish(ctx, l, o, now); !ok || err != nil {
							b.Fatalf("Finish %s = %v, %v", ev.ID, ok, err)
						}
					}
				}
			}
			b.ResetTimer()
			for range b.N {
				now := time.Now()
				for range perStep {
					id := fmt.Sprintf("evt-%07d", events)
					events++
					ev := &scheduler.Event{App: "bench", ID: id, URL: "https://hooks.example.com/v2/orders/" + id + "/notify?tenant=acme",
						Method: "POST", Headers: map[string]string{"Content-Type": "application/json"}, DueAt: now,
						Status: scheduler.StatusPending, CreatedAt: now, UpdatedAt: now, Body: benchBody}
					if existing, err := st.Create(ctx, ev, now); err != nil || existing != nil {
						b.Fatalf("Create %s = %v, %v", id, existing, err)
					}
				}
				time.Sleep(50 * time.Millisecond)
				deliver()
			}
			for {
				n, _, err := st.OutboxLag(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			stop()
			<-done
			b.StopTimer()
			w.mu.Lock()
			defer w.mu.Unlock()
			b.ReportMetric(float64(w.rows)/float64(events), "rows/event")
			b.ReportMetric(float64(w.cpu.Nanoseconds())/float64(events), "write-cpu-ns/event")
		})
	}
}

var benchBody = []byte(`{"order":{"id":"ord-000000042","total":"129.90","currency":"EUR"},"customer":"c-81","state":"paid"}`)
