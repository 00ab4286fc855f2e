package redisstore

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
)

func newCheckStore(t *testing.T, rs *redistest.Server) *Store {
	t.Helper()
	st, err := New(context.Background(), rs.Client(), Config{Namespace: "chk"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCheckRefusesAnEvictingRedis: a Redis whose maxmemory-policy may
// evict keys fails the check, unless told to allow it.
func TestCheckRefusesAnEvictingRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.WithArgs("--maxmemory-policy", "allkeys-lru"))
	var logs testproc.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	st := newCheckStore(t, rs)
	if _, err := st.Check(context.Background(), false, log); err == nil ||
		!strings.Contains(err.Error(), `"allkeys-lru"`) || !strings.Contains(err.Error(), "noeviction") {
		t.Errorf("Check = %v; want the policy named and the fix", err)
	}
	ids, err := st.Check(context.Background(), true, log)
	if err != nil || len(ids) != 1 || ids[rs.Addr()] == "" {
		t.Errorf("Check with the override = %v, %v; want it to pass and return the run id", ids, err)
	}
	if !strings.Contains(logs.String(), "starting anyway") {
		t.Errorf("the override is not logged:\n%s", logs.String())
	}
}

// TestCheckWarnsWithoutAOF: noeviction passes; AOF off is a warning,
// AOF on is not.
func TestCheckWarnsWithoutAOF(t *testing.T) {
	for _, aof := range []bool{false, true} {
		var opts []redistest.Option
		if aof {
			opts = append(opts, redistest.WithAOF())
		}
		rs := redistest.Start(t, opts...)
		var logs testproc.Buffer
		if _, err := newCheckStore(t, rs).Check(context.Background(), false, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatalf("aof=%v: Check: %v", aof, err)
		}
		if warned := strings.Contains(logs.String(), "AOF is off"); warned == aof {
			t.Errorf("aof=%v: warned about AOF: %v\n%s", aof, warned, logs.String())
		}
	}
}

// TestCheckWatchNoticesRestart: a restart of Redis (new run_id) is counted
// and logged, and the scripts are loaded again.
func TestCheckWatchNoticesRestart(t *testing.T) {
	rs := redistest.Start(t, redistest.WithAOF())
	st := newCheckStore(t, rs)
	var logs testproc.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ids, err := st.Check(context.Background(), false, log)
	if err != nil {
		t.Fatal(err)
	}
	restarts := prometheus.NewCounter(prometheus.CounterOpts{Name: "restarts"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); st.Watch(ctx, ids, restarts, log) }()
	defer func() { cancel(); <-done }()

	rs.Restart(t)
	deadline := time.Now().Add(3 * WatchInterval)
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
