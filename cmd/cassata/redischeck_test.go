package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/store/redisstore"
)

func newStore(t *testing.T, rs *redistest.Server) *redisstore.Store {
	t.Helper()
	st, err := redisstore.New(context.Background(), rs.Client(), redisstore.Config{Namespace: "chk"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestServerRefusesAnEvictingRedis: a server on a Redis whose
// maxmemory-policy may evict keys refuses to start, unless told to.
func TestServerRefusesAnEvictingRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.WithArgs("--maxmemory-policy", "allkeys-lru"))
	t.Setenv("CASSATA_REDIS_URL", rs.URL())
	t.Setenv("CASSATA_REDIS_ALLOW_EVICTION", "")
	start := time.Now()
	if code := run([]string{"server", "--listen", "127.0.0.1:0"}); code == 0 {
		t.Fatal("cassata server started on a Redis with maxmemory-policy allkeys-lru")
	}
	t.Logf("refused in %s", time.Since(start).Round(time.Millisecond))

	var logs testproc.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	st := newStore(t, rs)
	if _, err := checkRedis(context.Background(), st, false, log); err == nil ||
		!strings.Contains(err.Error(), `"allkeys-lru"`) || !strings.Contains(err.Error(), "noeviction") {
		t.Errorf("checkRedis = %v; want the policy named and the fix", err)
	}
	ids, err := checkRedis(context.Background(), st, true, log)
	if err != nil || len(ids) != 1 || ids[rs.Addr()] == "" {
		t.Errorf("checkRedis with the override = %v, %v; want it to pass and return the run id", ids, err)
	}
	if !strings.Contains(logs.String(), "starting anyway") {
		t.Errorf("the override is not logged:\n%s", logs.String())
	}
}

// TestCheckRedisWarnsWithoutAOF: noeviction passes; AOF off is a warning,
// AOF on is not.
func TestCheckRedisWarnsWithoutAOF(t *testing.T) {
	for _, aof := range []bool{false, true} {
		var opts []redistest.Option
		if aof {
			opts = append(opts, redistest.WithAOF())
		}
		rs := redistest.Start(t, opts...)
		var logs testproc.Buffer
		if _, err := checkRedis(context.Background(), newStore(t, rs), false, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatalf("aof=%v: checkRedis: %v", aof, err)
		}
		if warned := strings.Contains(logs.String(), "AOF is off"); warned == aof {
			t.Errorf("aof=%v: warned about AOF: %v\n%s", aof, warned, logs.String())
		}
	}
}

// TestWatchRedisNoticesRestart: a restart of Redis (new run_id) is counted
// and logged, and the scripts are loaded again.
func TestWatchRedisNoticesRestart(t *testing.T) {
	rs := redistest.Start(t, redistest.WithAOF())
	st := newStore(t, rs)
	var logs testproc.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ids, err := checkRedis(context.Background(), st, false, log)
	if err != nil {
		t.Fatal(err)
	}
	restarts := prometheus.NewCounter(prometheus.CounterOpts{Name: "restarts"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); watchRedis(ctx, st, ids, restarts, log) }()
	defer func() { cancel(); <-done }()

	rs.Restart(t)
	deadline := time.Now().Add(3 * redisWatchInterval)
	for counterValue(restarts) < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := counterValue(restarts); n != 1 {
		t.Fatalf("restarts counted = %v, want 1\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "redis restarted") {
		t.Errorf("the restart is not logged:\n%s", logs.String())
	}
	// The scripts are loaded again without waiting for a NOSCRIPT.
	for {
		loaded, err := rs.Client().ScriptExists(context.Background(), luascripts.Claim.Hash()).Result()
		if err == nil && len(loaded) == 1 && loaded[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim script not loaded after the restart: %v, %v", loaded, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
