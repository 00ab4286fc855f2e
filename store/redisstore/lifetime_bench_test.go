package redisstore

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// BenchmarkEventLifetime measures the Redis CPU one event costs over its
// whole life in Redis, phase by phase, as the worker and the archiver drive
// it: create (schedule.lua, pipelined in batches like the batch route),
// claim (claim.lua, all shards in one pipeline, lifetimeBatch per shard),
// finish (ack.lua, pipelined like the finisher, every delivery a success),
// archive (XREADGROUP of the outbox and archived.lua, which expires the
// event's hash), once per event layout (codec.go). It is the input of the README's "Scaling out"
// projection: a Redis core sustains about 1e6 / total events per second.
//
// The CPU is redis-server's own (INFO cpu: used_cpu_user + used_cpu_sys,
// getrusage), not the wall time of INFO commandstats, which counts time the
// server spent preempted on a busy machine. Each phase also reports the
// PUBLISH calls (wake-ups) per event, the one command that a Redis Cluster
// broadcasts to every master.
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkEventLifetime -benchtime 20000x
func BenchmarkEventLifetime(b *testing.B) {
	for _, layout := range []int{layoutHash, layoutCompact, layoutPacked} {
		b.Run(map[int]string{layoutHash: "hash", layoutCompact: "compact", layoutPacked: "packed"}[layout], func(b *testing.B) {
			benchmarkEventLifetime(b, layout)
		})
	}
}

// benchmarkEventLifetime is BenchmarkEventLifetime in one event layout
// (codec.go).
func benchmarkEventLifetime(b *testing.B, layout int) {
	st, admin := lifetimeStore(b, layout)
	ctx := context.Background()
	n := b.N
	evs := lifetimeEvents(n)
	var items []scheduler.FinishItem // the claimed events, for the finish phase
	phases := []struct {
		name string
		run  func(b *testing.B) int // returns the events it handled
	}{
		{"create", func(b *testing.B) int {
			createBatches(b, st, evs)
			return n
		}},
		{"claim", func(b *testing.B) int {
			items = claimAll(b, st, n)
			return len(items)
		}},
		{"finish", func(b *testing.B) int {
			for i := 0; i < len(items); i += lifetimeBatch {
				for _, r := range st.FinishMany(ctx, items[i:min(len(items), i+lifetimeBatch)]) {
					if r.Err != nil || !r.Held {
						b.Fatalf("finish: held %v, %v", r.Held, r.Err)
					}
				}
			}
			return len(items)
		}},
		{"archive", func(b *testing.B) int {
			finals := 0
			for s := range st.Shards() {
				for {
					recs, err := st.ReadOutbox(ctx, s, "a1", false, 500)
					if err != nil {
						b.Fatalf("read outbox: %v", err)
					}
					if len(recs) == 0 {
						break
					}
					for _, r := range recs {
						if r.Kind == scheduler.RecordFinal {
							finals++
						}
					}
					if err := st.AckOutbox(ctx, s, recs); err != nil {
						b.Fatalf("ack outbox: %v", err)
					}
				}
			}
			if finals != n {
				b.Fatalf("archived %d final records, want %d", finals, n)
			}
			return n
		}},
	}

	b.ResetTimer()
	var total float64
	for _, p := range phases {
		var cmds0 map[string]string
		if *lifetimeCommands {
			cmds0 = infoFields(b, admin, "commandstats")
		}
		cpu0, pub0 := redisCPU(b, admin), publishCalls(b, admin)
		got := p.run(b)
		cpu := redisCPU(b, admin) - cpu0
		pubs := publishCalls(b, admin) - pub0
		if *lifetimeCommands {
			logCommands(b, p.name, cmds0, infoFields(b, admin, "commandstats"), got, cpu)
		}
		us := cpu.Seconds() * 1e6 / float64(got)
		total += us
		b.ReportMetric(us, p.name+"-redis-µs/event")
		b.ReportMetric(float64(pubs)/float64(got), p.name+"-publish/event")
	}
	b.ReportMetric(total, "redis-µs/event")
}

// lifetimeCommands: BenchmarkEventLifetime also logs, per phase, the
// commands redis-server ran (INFO commandstats) per event: calls, and
// their wall time in µs (scripts' own include the commands they call).
//
//	go test ./store/redisstore -run '^$' -bench 'BenchmarkEventLifetime/packed$' -benchtime 20000x -args -lifetime.commands
var lifetimeCommands = flag.Bool("lifetime.commands", false, "BenchmarkEventLifetime: log each phase's INFO commandstats per event")

// logCommands logs the commands run between INFO commandstats before and
// after, per event of n, and the phase's Redis CPU.
func logCommands(b *testing.B, phase string, before, after map[string]string, n int, cpu time.Duration) {
	var lines []string
	for k := range after {
		c1, u1 := cmdStat(after, k)
		c0, u0 := cmdStat(before, k)
		if c1 > c0 {
			lines = append(lines, fmt.Sprintf("%s %s: %.3f calls, %.2f µs per event",
				phase, strings.TrimPrefix(k, "cmdstat_"), (c1-c0)/float64(n), (u1-u0)/float64(n)))
		}
	}
	slices.Sort(lines)
	// Printed, not logged: a benchmark's log is cut after a few lines.
	fmt.Printf("%s (b.N %d) %s: %.2f redis-µs/event\n%s\n", b.Name(), n, phase, cpu.Seconds()*1e6/float64(n),
		strings.Join(lines, "\n"))
}

// cmdStat reads the calls and µs of command field k (cmdstat_<name>) of
// INFO commandstats fields; zeros when it is not there.
func cmdStat(fields map[string]string, k string) (calls, usec float64) {
	_, _ = fmt.Sscanf(fields[k], "calls=%g,usec=%g", &calls, &usec)
	return calls, usec
}

// lifetimeStore starts a redis-server and a store on it in the given event
// layout; admin is a client of its own for INFO.
func lifetimeStore(b *testing.B, layout int) (st *Store, admin *redis.Client) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	st, err := New(context.Background(), rdb, Config{Namespace: "life", Retention: time.Hour, EventLayout: layout})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	return st, srv.Client()
}

// lifetimeEvents are n events shaped like the bench's realistic ones, due
// already.
func lifetimeEvents(n int) []*scheduler.Event {
	body := []byte(`{"order":12345,"status":"paid","customer":"c-0042","amount":1999,"currency":"EUR","note":"x"}`)
	evs := make([]*scheduler.Event, n)
	created := time.Now().Truncate(time.Millisecond)
	for i := range evs {
		evs[i] = &scheduler.Event{App: "bench", ID: "e" + strconv.Itoa(i),
			URL:    "https://example.com/hook?order=12345&customer=c-0042&source=bench-run",
			Method: "POST", Headers: map[string]string{"Content-Type": "application/json"},
			Body: body, DueAt: created.Add(-time.Second), CreatedAt: created, UpdatedAt: created}
	}
	return evs
}

// createBatches creates evs in batches of lifetimeBatch, as the batch route does.
func createBatches(b *testing.B, st *Store, evs []*scheduler.Event) {
	ctx := context.Background()
	for i := 0; i < len(evs); i += lifetimeBatch {
		res, err := st.CreateMany(ctx, evs[i:min(len(evs), i+lifetimeBatch)], time.Time{})
		if err != nil {
			b.Fatalf("create: %v", err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatalf("create: %v", r.Err)
			}
		}
	}
}

// claimAll claims n due events, lifetimeBatch per shard and round, all
// shards in one pipeline, and returns each one's successful outcome.
func claimAll(b *testing.B, st *Store, n int) []scheduler.FinishItem {
	ctx := context.Background()
	reqs := make([]scheduler.ClaimRequest, st.Shards())
	for s := range reqs {
		reqs[s] = scheduler.ClaimRequest{Shard: s, Batch: lifetimeBatch}
	}
	var items []scheduler.FinishItem
	for len(items) < n {
		claims, errs := st.ClaimShards(ctx, reqs, "w1", time.Minute, time.Time{})
		got := 0
		for s, c := range claims {
			if errs[s] != nil {
				b.Fatalf("claim shard %d: %v", s, errs[s])
			}
			for _, ev := range c.Events {
				items = append(items, scheduler.FinishItem{
					Lease: scheduler.Lease{App: ev.App, ID: ev.ID, Worker: "w1", Attempt: ev.Attempts},
					Outcome: scheduler.Outcome{Status: scheduler.StatusCompleted,
						Attempt: scheduler.Attempt{Attempt: ev.Attempts, At: time.Now().UnixMilli(),
							StatusCode: 200, DurationMS: 3, Worker: "w1"}}})
				got++
			}
		}
		if got == 0 {
			b.Fatalf("claimed nothing with %d of %d events claimed", len(items), n)
		}
	}
	return items
}

// lifetimeBatch is the batch of BenchmarkEventLifetime's creates, claims
// (per shard) and finishes.
const lifetimeBatch = 100

// redisCPU is the CPU time redis-server has used (INFO cpu).
func redisCPU(tb testing.TB, rdb *redis.Client) time.Duration {
	tb.Helper()
	info := infoFields(tb, rdb, "cpu")
	var sum float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(info[f], 64)
		if err != nil {
			tb.Fatalf("INFO cpu %s: %q: %v", f, info[f], err)
		}
		sum += v
	}
	return time.Duration(sum * float64(time.Second))
}

// publishCalls is how many PUBLISH commands the server ran, scripts'
// included (INFO commandstats).
func publishCalls(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	stats, ok := infoFields(tb, rdb, "commandstats")["cmdstat_publish"]
	if !ok {
		return 0
	}
	for _, kv := range strings.Split(stats, ",") {
		if v, ok := strings.CutPrefix(kv, "calls="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatalf("cmdstat_publish %q: %v", stats, err)
			}
			return n
		}
	}
	tb.Fatalf("cmdstat_publish without calls: %q", stats)
	return 0
}

// infoFields is one INFO section as name → value.
func infoFields(tb testing.TB, rdb *redis.Client, section string) map[string]string {
	tb.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		tb.Fatal(fmt.Errorf("INFO %s: %w", section, err))
	}
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// BenchmarkEmptyClaimRound measures the Redis CPU of a claim round that
// finds nothing: claim.lua on every shard in one pipeline, what every
// worker runs after each wake-up and at least every poll interval. With W
// workers, a wake-up costs W of these (see the README's "Scaling out").
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkEmptyClaimRound -benchtime 2000x
func BenchmarkEmptyClaimRound(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	st, err := New(ctx, rdb, Config{Namespace: "idle"})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	// One event due in an hour: the shards are not all empty keys, and
	// each claim reports a next due time as in a deployment with a backlog.
	ev := &scheduler.Event{App: "bench", ID: "later", URL: "https://example.com/hook", Method: "POST",
		DueAt: time.Now().Add(time.Hour), CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if _, err := st.Create(ctx, ev, time.Time{}); err != nil {
		b.Fatalf("create: %v", err)
	}
	reqs := make([]scheduler.ClaimRequest, st.Shards())
	for s := range reqs {
		reqs[s] = scheduler.ClaimRequest{Shard: s, Batch: DefaultShards}
	}
	admin := srv.Client()
	b.ResetTimer()
	cpu0 := redisCPU(b, admin)
	for range b.N {
		claims, errs := st.ClaimShards(ctx, reqs, "w1", time.Minute, time.Time{})
		for s, c := range claims {
			if errs[s] != nil {
				b.Fatalf("claim shard %d: %v", s, errs[s])
			}
			if len(c.Events) > 0 {
				b.Fatalf("claimed %d events from shard %d, none is due", len(c.Events), s)
			}
		}
	}
	cpu := redisCPU(b, admin) - cpu0
	b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "redis-µs/round")
	b.ReportMetric(cpu.Seconds()*1e6/float64(b.N*len(reqs)), "redis-µs/shard")
}

// BenchmarkAppByKey measures the Redis CPU of authenticating one API key
// (appbykey.lua on the global <ns>:apps hash, one slot): what every API
// request with a key costs one master, among 100 applications.
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkAppByKey -benchtime 20000x
func BenchmarkAppByKey(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	st, err := New(ctx, rdb, Config{Namespace: "auth"})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	now := time.Now()
	for i := range 100 {
		h := fmt.Sprintf("%064x", i)
		if err := st.CreateApp(ctx, testAppRecord("app"+strconv.Itoa(i), now, h)); err != nil {
			b.Fatalf("create app: %v", err)
		}
	}
	admin := srv.Client()
	b.ResetTimer()
	cpu0 := redisCPU(b, admin)
	for i := range b.N {
		app, err := st.AppByKeyHash(ctx, fmt.Sprintf("%064x", i%100))
		if err != nil || app.Name != "app"+strconv.Itoa(i%100) {
			b.Fatalf("AppByKeyHash: %v, %v", app, err)
		}
	}
	cpu := redisCPU(b, admin) - cpu0
	b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "redis-µs/call")
}

// BenchmarkFinishBatch measures the Redis CPU of recording an outcome by
// how many outcomes one FinishMany call carries: the worker's finisher
// sends what has gathered while its previous call was in flight
// (scheduler/worker's batcher), one outcome a call when it sends at once.
// Each sub-benchmark creates and claims b.N events, then finishes them in
// calls of batch outcomes, one call at a time; only the finish phase is
// measured (redis-server's own CPU, as BenchmarkEventLifetime).
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkFinishBatch -benchtime 4000x
func BenchmarkFinishBatch(b *testing.B) {
	for _, batch := range []int{1, 4, 20, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st, admin := lifetimeStore(b, layoutPacked)
			createBatches(b, st, lifetimeEvents(b.N))
			items := claimAll(b, st, b.N)
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := redisCPU(b, admin)
			for i := 0; i < len(items); i += batch {
				for _, r := range st.FinishMany(ctx, items[i:min(len(items), i+batch)]) {
					if r.Err != nil || !r.Held {
						b.Fatalf("finish: held %v, %v", r.Held, r.Err)
					}
				}
			}
			cpu := redisCPU(b, admin) - cpu0
			b.ReportMetric(cpu.Seconds()*1e6/float64(len(items)), "redis-µs/outcome")
		})
	}
}

// BenchmarkClaimBatch measures the Redis CPU of claiming an event by how
// many events one claim.lua call takes: under a steady load a worker
// claims a shard when its next event is due, so a call mostly takes one
// (README, round eleven), while a burst's calls take up to the free slots.
// Each sub-benchmark creates b.N due events, then claims them shard by
// shard in calls of at most batch, one call a round trip; only the claims
// are measured (redis-server's own CPU, as BenchmarkEventLifetime), with
// the EVALSHA time per event from INFO commandstats beside it.
//
//	go test ./store/redisstore -run '^$' -bench BenchmarkClaimBatch -benchtime 4000x
func BenchmarkClaimBatch(b *testing.B) {
	for _, batch := range []int{1, 4, 20, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st, admin := lifetimeStore(b, layoutNewest)
			createBatches(b, st, lifetimeEvents(b.N))
			ctx := context.Background()
			b.ResetTimer()
			cmds0 := infoFields(b, admin, "commandstats")
			cpu0 := redisCPU(b, admin)
			got := 0
			for got < b.N {
				before := got
				for s := 0; s < st.Shards() && got < b.N; s++ {
					claims, errs := st.ClaimShards(ctx, []scheduler.ClaimRequest{{Shard: s, Batch: batch}}, "w1",
						time.Minute, time.Time{})
					if errs[0] != nil {
						b.Fatalf("claim shard %d: %v", s, errs[0])
					}
					got += len(claims[0].Events)
				}
				if got == before {
					b.Fatalf("claimed nothing with %d of %d events claimed", got, b.N)
				}
			}
			cpu := redisCPU(b, admin) - cpu0
			calls, usec := cmdStat(infoFields(b, admin, "commandstats"), "cmdstat_evalsha")
			calls0, usec0 := cmdStat(cmds0, "cmdstat_evalsha")
			b.ReportMetric(cpu.Seconds()*1e6/float64(got), "redis-µs/event")
			b.ReportMetric((usec-usec0)/float64(got), "evalsha-µs/event")
			b.ReportMetric((calls-calls0)/float64(got), "calls/event")
		})
	}
}
