package integration

import (
	"context"
	"hash/crc32"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// TestWorkerGivesBackLostClaims: an event in a live worker's processing
// list that the worker does not know of (Redis ran its claim, the reply
// never arrived) is delivered within about a second, not after the
// visibility timeout, and the lost claim does not count as an attempt.
func TestWorkerGivesBackLostClaims(t *testing.T) {
	const visibility = 30 * time.Second
	cases := []struct {
		name string
		// lose makes the event a claim of the worker it does not know of,
		// and returns the store the worker runs on.
		lose func(t *testing.T, e *env, id, worker string) *redisstore.Store
	}{
		{"claimed for the worker behind its back", func(t *testing.T, e *env, id, worker string) *redisstore.Store {
			e.schedule(e.event(id))
			m := testApp + "/" + id
			shard := int(crc32.ChecksumIEEE([]byte(m)) % uint32(e.store.Shards()))
			c, err := e.store.Claim(t.Context(), shard, worker, 10, visibility, time.Time{})
			if err != nil || len(c.Events) != 1 {
				t.Fatalf("claim as %s: %+v, %v", worker, c, err)
			}
			return e.newStore()
		}},
		{"claim reply lost, go-redis retried the claim", func(t *testing.T, e *env, id, worker string) *redisstore.Store {
			// The worker talks to Redis through a proxy that breaks the
			// connection instead of forwarding the claim's reply.
			proxy := redistest.StartProxy(t, e.redis.Addr())
			rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: 2})
			t.Cleanup(func() { _ = rdb.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: e.ns})
			if err != nil {
				t.Fatal(err)
			}
			dropped := proxy.DropReply([]byte(testApp + "/" + id))
			t.Cleanup(func() {
				select {
				case <-dropped:
				default:
					t.Error("the proxy dropped no claim reply: the fault was not played")
				}
			})
			e.schedule(e.event(id))
			return st
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, nil)
			const id, workerID = "lost-claim", "w-lost"
			st := tc.lose(t, e, id, workerID)
			start := time.Now()
			e.startWorker(st, worker.Config{ID: workerID, Visibility: visibility})

			arr := e.dest.waitArrivals(t, id, 1, 5*time.Second)
			took := arr[0].At.Sub(start)
			t.Logf("delivered %s after the worker started (visibility timeout %s)", took.Round(time.Millisecond), visibility)
			if arr[0].Attempt != 1 {
				t.Errorf("delivered as attempt %d, want 1: the lost claim must not count", arr[0].Attempt)
			}
			got := e.waitStatus(id, scheduler.StatusCompleted, 5*time.Second)
			if got.Attempts != 1 || len(got.History) != 1 || got.History[0].StatusCode != 200 || got.History[0].Worker != workerID {
				t.Errorf("attempts %d, history %+v; want one attempt by %s, 200", got.Attempts, got.History, workerID)
			}
			if n := len(e.dest.of(id)); n != 1 {
				t.Errorf("%d deliveries, want 1", n)
			}
			e.assertNothingInFlight()
		})
	}
}
