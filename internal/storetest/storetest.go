// Package storetest gives unit tests a real redisstore.Store on an
// in-process miniredis: the store's Lua scripts and key layout run as they
// do in production, without a redis-server process. Tests that need what
// only a real server shows (persistence, crashes, a cluster) use
// internal/redistest instead.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/store/redisstore"
)

// Miniredis starts a miniredis for the test and returns a store on it,
// configured by cfg, with the server for tests that move its clock or
// close it. The client gives up after one retry, so a test that closes the
// server sees the error at once, but waits up to 30s for a reply: miniredis
// runs each script in an interpreter, and a batch of a thousand on a loaded
// machine (a parallel suite under -race) can take longer than go-redis's
// default 3s. Both are closed when the test ends.
func Miniredis(t testing.TB, cfg redisstore.Config) (*redisstore.Store, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: 1,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	st, err := redisstore.New(context.Background(), rdb, cfg)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return st, mr
}
