package main

import (
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
)

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
}
