package redisstore

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
)

// BenchmarkLayoutSketch compares, in redis-server's CPU per event, the
// event hash this package uses with a compact layout it does not (one
// string per event: a fixed 40-byte state header, then the request, then
// the history), over an event's life: create, claim, finish, archive. The
// scripts in testdata/layoutsketch issue the commands of the real scripts
// for a realistic event (URL with a query, header, 100-byte body), without
// their other work (pause and flow checks, retries, the processing list):
// a sketch to weigh a change of layout (README, "Round five"), not the
// product's cost, which BenchmarkEventLifetime measures. It also reports
// the Redis bytes per pending event of each layout.
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkLayoutSketch -benchtime 20000x
func BenchmarkLayoutSketch(b *testing.B) {
	for _, layout := range []string{"hash", "string"} {
		b.Run(layout, func(b *testing.B) { benchmarkLayoutSketch(b, layout) })
	}
}

func benchmarkLayoutSketch(b *testing.B, layout string) {
	srv := redistest.Start(b)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	script := func(name string) *redis.Script {
		src, err := os.ReadFile(filepath.Join("testdata", "layoutsketch", name+".lua"))
		if err != nil {
			b.Fatal(err)
		}
		return redis.NewScript(string(src))
	}
	create, claim, finish, archived := script("create"), script("claim"), script("finish"), script("archived")
	const out, batch = "{b:1}:out", 100
	if err := rdb.XGroupCreateMkStream(ctx, out, "g", "$").Err(); err != nil {
		b.Fatal(err)
	}
	n := b.N
	var total float64
	phase := func(name string, run func()) {
		b.Helper()
		c0 := redisCPU(b, rdb)
		run()
		us := float64((redisCPU(b, rdb) - c0).Microseconds()) / float64(n)
		total += us
		b.ReportMetric(us, name+"-redis-µs/event")
	}
	mem0 := usedMemory(b, rdb)
	b.ResetTimer()
	phase("create", func() {
		for base := 0; base < n; base += batch {
			if err := create.Run(ctx, rdb, nil, layout, base, min(batch, n-base)).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	stream, err := rdb.MemoryUsage(ctx, out, 0).Result()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(usedMemory(b, rdb)-mem0-stream)/float64(n), "bytes/pending")
	b.StartTimer()
	phase("claim", func() {
		for {
			v, err := claim.Run(ctx, rdb, nil, layout, batch).Slice()
			if err != nil {
				b.Fatal(err)
			}
			if len(v) == 0 {
				return
			}
		}
	})
	phase("finish", func() {
		for base := 0; base < n; base += batch {
			if err := finish.Run(ctx, rdb, nil, layout, base, min(batch, n-base)).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	phase("archive", func() {
		for {
			st, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c",
				Streams: []string{out, ">"}, Count: 500, Block: -1}).Result()
			if err == redis.Nil || (err == nil && (len(st) == 0 || len(st[0].Messages) == 0)) {
				return
			}
			if err != nil {
				b.Fatal(err)
			}
			args := make([]any, 0, 2*len(st[0].Messages)+2)
			args = append(args, layout)
			var keys []string
			for _, m := range st[0].Messages {
				args = append(args, m.ID)
				if m.Values["k"] == "final" {
					keys = append(keys, "{b:1}:ev:"+m.Values["m"].(string))
				}
			}
			// The archiver reads the finished events in one pipeline.
			pipe := rdb.Pipeline()
			for _, k := range keys {
				if layout == "hash" {
					pipe.HGetAll(ctx, k)
				} else {
					pipe.Get(ctx, k)
				}
			}
			if len(keys) > 0 {
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			args = append(args, "--")
			for _, k := range keys {
				args = append(args, k)
			}
			if err := archived.Run(ctx, rdb, nil, args...).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(total, "redis-µs/event")
}

// usedMemory is INFO memory's used_memory.
func usedMemory(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	v, err := strconv.ParseInt(infoFields(tb, rdb, "memory")["used_memory"], 10, 64)
	if err != nil {
		tb.Fatalf("INFO memory used_memory: %v", err)
	}
	return v
}
