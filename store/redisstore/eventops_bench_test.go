package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// commandCounter is a go-redis hook counting the commands a client sends
// (each command of a pipeline counts), so tests and benchmarks can see the
// round trips an operation costs. It keeps the names of the last ones, and
// adds up the bytes of the commands' string arguments.
type commandCounter struct {
	n        atomic.Int64
	argBytes atomic.Int64
	mu       sync.Mutex
	names    []string
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.record(cmd)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.record(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *commandCounter) record(cmd redis.Cmder) {
	c.n.Add(1)
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok {
			c.argBytes.Add(int64(len(s)))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.names) >= 64 {
		c.names = c.names[1:]
	}
	c.names = append(c.names, cmd.Name())
}

// since returns the names of the commands sent since take returned n0.
func (c *commandCounter) since(n0 int64) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := int(c.n.Load() - n0)
	return slices.Clone(c.names[max(0, len(c.names)-k):])
}

// BenchmarkEventOps measures the operations that change an event, through
// the Scheduler as the API calls them, on a real redis-server: create,
// claim (one event per call, one shard so every call finds one), cancel then retry, and run now. Besides
// ns/op it reports cmds/op, the Redis commands each operation sent, and
// server-µs/op, the time redis-server spent on them.
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkEventOps
func BenchmarkEventOps(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	ns := 0
	setup := func(b *testing.B) (*Store, *scheduler.Scheduler, *commandCounter) {
		b.Helper()
		ns++
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		b.Cleanup(func() { _ = rdb.Close() })
		st, err := New(ctx, rdb, Config{Namespace: "bench" + strconv.Itoa(ns), Shards: 1})
		if err != nil {
			b.Fatalf("New: %v", err)
		}
		cc := &commandCounter{}
		rdb.AddHook(cc)
		return st, scheduler.New(st, scheduler.Config{}), cc
	}
	newEv := func(i int) *scheduler.Event {
		return &scheduler.Event{App: "bench", ID: "e" + strconv.Itoa(i), URL: "https://example.com/hook",
			Method: "POST", Headers: map[string]string{"Content-Type": "application/json"},
			Body: []byte(`{"order":12345,"status":"paid"}`), DueAt: time.Now().Add(-time.Second)}
	}
	fill := func(b *testing.B, sched *scheduler.Scheduler, n int) {
		b.Helper()
		for i := range n {
			if _, _, err := sched.Create(ctx, newEv(i), scheduler.CreateOptions{}); err != nil {
				b.Fatalf("create: %v", err)
			}
		}
	}
	// serverUsec is the time redis-server spent running commands since
	// the last CONFIG RESETSTAT (INFO commandstats): less disturbed than
	// ns/op by other processes competing for the CPU.
	admin := srv.Client()
	serverUsec := func(b *testing.B) float64 {
		info, err := admin.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		return commandstatsUsec(info)
	}
	resetStats := func(b *testing.B) {
		if err := admin.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	report := func(b *testing.B, cc *commandCounter, start int64) {
		b.ReportMetric(float64(cc.n.Load()-start)/float64(b.N), "cmds/op")
		b.ReportMetric(serverUsec(b)/float64(b.N), "server-µs/op")
	}

	b.Run("create", func(b *testing.B) {
		_, sched, cc := setup(b)
		start := cc.n.Load()
		resetStats(b)
		b.ResetTimer()
		for i := range b.N {
			if _, _, err := sched.Create(ctx, newEv(i), scheduler.CreateOptions{}); err != nil {
				b.Fatalf("create: %v", err)
			}
		}
		b.StopTimer()
		report(b, cc, start)
	})
	b.Run("claim", func(b *testing.B) {
		st, sched, cc := setup(b)
		fill(b, sched, b.N)
		start := cc.n.Load()
		resetStats(b)
		b.ResetTimer()
		got := 0
		for got < b.N {
			c, err := st.Claim(ctx, 0, "w", 1, time.Minute, time.Time{})
			if err != nil {
				b.Fatalf("claim: %v", err)
			}
			got += len(c.Events)
		}
		b.StopTimer()
		b.ReportMetric(float64(cc.n.Load()-start)/float64(got), "cmds/event")
		b.ReportMetric(serverUsec(b)/float64(got), "server-µs/event")
	})
	b.Run("cancel+retry", func(b *testing.B) {
		_, sched, cc := setup(b)
		fill(b, sched, 1)
		start := cc.n.Load()
		resetStats(b)
		b.ResetTimer()
		for range b.N {
			if _, err := sched.Cancel(ctx, "bench", "e0"); err != nil {
				b.Fatalf("cancel: %v", err)
			}
			if _, err := sched.Retry(ctx, "bench", "e0"); err != nil {
				b.Fatalf("retry: %v", err)
			}
		}
		b.StopTimer()
		report(b, cc, start)
	})
	b.Run("run-now", func(b *testing.B) {
		_, sched, cc := setup(b)
		fill(b, sched, 1)
		start := cc.n.Load()
		resetStats(b)
		b.ResetTimer()
		for range b.N {
			if _, err := sched.RunNow(ctx, "bench", "e0"); err != nil {
				b.Fatalf("run now: %v", err)
			}
		}
		b.StopTimer()
		report(b, cc, start)
	})
}

// commandstatsUsec sums the usec of every command in an INFO commandstats
// reply but INFO and CONFIG (the measuring itself).
func commandstatsUsec(info string) float64 {
	var total float64
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" || name == "cmdstat_config" {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseFloat(v, 64)
				total += n
			}
		}
	}
	return total
}
