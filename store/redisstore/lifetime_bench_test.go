package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// BenchmarkLifetime measures the Redis CPU of an event's whole life on a
// real redis-server, phase by phase, as the server and the worker spend it:
// created through CreateMany in batches of 100, claimed 100 at a time,
// finished COMPLETED through FinishMany in batches of 100, and archived
// (the outbox read and acknowledged, as the archiver does). Events have the
// realistic shape of make bench (a URL with a ~40-byte query, a 100-byte
// JSON body, a Content-Type header). It reports server-µs/event per phase
// and in all (INFO commandstats: the time redis-server spent running the
// commands, steadier than wall time on a shared machine).
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkLifetime -benchtime 20000x
func BenchmarkLifetime(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	st, err := New(ctx, rdb, Config{Namespace: "life", Shards: 1})
	if err != nil {
		b.Fatal(err)
	}
	admin := srv.Client()
	usec := func() float64 {
		info, err := admin.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		return commandstatsUsec(info)
	}
	const batch = 100
	now := time.Now()
	body := []byte(`{"order":"o-00004567","customer":"c-000123","amount":1234,"currency":"EUR","items":[1,2,3],"ok":1}`)
	phases := map[string]float64{}
	measure := func(phase string, f func()) {
		if err := admin.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		f()
		phases[phase] += usec()
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		evs := make([]*scheduler.Event, n)
		for i := range evs {
			j := done + i
			evs[i] = &scheduler.Event{App: "bench", ID: "e" + strconv.Itoa(j),
				URL:    fmt.Sprintf("http://127.0.0.1:8099/sink?customer=c-%06d&order=o-%08d&lang=en", j%1000, j),
				Method: "POST", Headers: map[string]string{"Content-Type": "application/json"},
				Body: body, DueAt: now.Add(-time.Second), CreatedAt: now, UpdatedAt: now}
		}
		measure("create", func() {
			if _, err := st.CreateMany(ctx, evs, time.Time{}); err != nil {
				b.Fatal(err)
			}
		})
		var c scheduler.Claim
		measure("claim", func() {
			if c, err = st.Claim(ctx, 0, "w", n, time.Minute, time.Time{}); err != nil || len(c.Events) != n {
				b.Fatalf("claim: %d events, %v", len(c.Events), err)
			}
		})
		items := make([]scheduler.FinishItem, n)
		for i, ev := range c.Events {
			items[i] = scheduler.FinishItem{
				Lease: scheduler.Lease{App: ev.App, ID: ev.ID, Worker: "w", Attempt: ev.Attempts},
				Outcome: scheduler.Outcome{Status: scheduler.StatusCompleted,
					Attempt: scheduler.Attempt{At: now.UnixMilli(), StatusCode: 200, DurationMS: 2}},
				Now: time.Time{}}
		}
		measure("finish", func() {
			for _, r := range st.FinishMany(ctx, items) {
				if r.Err != nil || !r.Held {
					b.Fatalf("finish: %v %v", r.Held, r.Err)
				}
			}
		})
		measure("archive", func() {
			recs, err := st.ReadOutbox(ctx, 0, "a", false, 2*n)
			if err != nil || len(recs) != 2*n {
				b.Fatalf("outbox: %d records, %v", len(recs), err)
			}
			if err := st.AckOutbox(ctx, 0, recs); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.StopTimer()
	total := 0.0
	for _, p := range []string{"create", "claim", "finish", "archive"} {
		b.ReportMetric(phases[p]/float64(b.N), p+"-µs/event")
		total += phases[p]
	}
	b.ReportMetric(total/float64(b.N), "redis-µs/event")
}
