package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
)

// lockStore returns a store on a real redis-server (redsync's scripts and
// expiries as production runs them).
func lockStore(t *testing.T) (*Store, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	st, err := New(context.Background(), rdb, Config{Namespace: testNS, Shards: 1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st, rdb
}

func TestWithLockRunsFn(t *testing.T) {
	t.Parallel()
	st, rdb := lockStore(t)
	ctx := context.Background()
	key := testNS + ":lock:migrate"

	ran := false
	err := st.WithLock(ctx, "migrate", 5*time.Second, func(fctx context.Context) error {
		ran = true
		if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Errorf("lock key %s while held: EXISTS %d, %v", key, n, err)
		}
		return fctx.Err()
	})
	if err != nil || !ran {
		t.Fatalf("WithLock = %v, ran %v", err, ran)
	}
	// Released at once: the key is gone, the next holder does not wait.
	if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("lock key after release: EXISTS %d, %v", n, err)
	}

	// fn's error comes back as is.
	boom := errors.New("boom")
	start := time.Now()
	if err := st.WithLock(ctx, "migrate", 5*time.Second, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("WithLock = %v, want fn's error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("re-taking a released lock took %v", d)
	}
}

func TestWithLockExcludes(t *testing.T) {
	t.Parallel()
	st, _ := lockStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var holders, maxHolders, runs atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 2 {
		wg.Go(func() {
			for range 5 {
				errs <- st.WithLock(ctx, "migrate", 2*time.Second, func(context.Context) error {
					n := holders.Add(1)
					defer holders.Add(-1)
					if n > maxHolders.Load() {
						maxHolders.Store(n)
					}
					runs.Add(1)
					time.Sleep(30 * time.Millisecond)
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("WithLock: %v", err)
		}
	}
	if runs.Load() != 10 || maxHolders.Load() != 1 {
		t.Fatalf("runs = %d, most holders at once = %d; want 10 and 1", runs.Load(), maxHolders.Load())
	}
}

func TestWithLockOtherNameDoesNotBlock(t *testing.T) {
	t.Parallel()
	st, _ := lockStore(t)
	ctx := context.Background()

	held := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- st.WithLock(ctx, "a", 5*time.Second, func(context.Context) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	defer func() {
		close(release)
		if err := <-done; err != nil {
			t.Errorf("WithLock a: %v", err)
		}
	}()

	bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	ran := false
	if err := st.WithLock(bctx, "b", 5*time.Second, func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("WithLock b while a is held = %v, ran %v", err, ran)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("lock b took %v while a was held", d)
	}

	// The same name does wait: it gives up when its context ends, without running fn.
	actx, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	ran = false
	if err := st.WithLock(actx, "a", 5*time.Second, func(context.Context) error { ran = true; return nil }); err == nil || ran {
		t.Fatalf("WithLock a while held = %v, ran %v; want an error and fn not run", err, ran)
	}
}

func TestWithLockExtendsWhileFnRuns(t *testing.T) {
	t.Parallel()
	st, _ := lockStore(t)
	ctx := context.Background()
	const ttl = 600 * time.Millisecond

	var firstDone atomic.Bool
	held := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- st.WithLock(ctx, "long", ttl, func(fctx context.Context) error {
			close(held)
			// Runs 2.5 ttls: without extension the lock would expire twice over.
			deadline := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(deadline) {
				if err := fctx.Err(); err != nil {
					return errors.Join(errors.New("fn's context ended while it ran"), context.Cause(fctx))
				}
				time.Sleep(20 * time.Millisecond)
			}
			firstDone.Store(true)
			return fctx.Err()
		})
	}()
	<-held

	var enteredEarly atomic.Bool
	start := time.Now()
	err := st.WithLock(ctx, "long", ttl, func(context.Context) error {
		if !firstDone.Load() {
			enteredEarly.Store(true)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("second WithLock: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first WithLock: %v", err)
	}
	if enteredEarly.Load() {
		t.Fatalf("second locker got in after %v while the first still ran (lock not extended)", time.Since(start))
	}
}

func TestWithLockLost(t *testing.T) {
	t.Parallel()
	st, rdb := lockStore(t)
	ctx := context.Background()
	const ttl = 600 * time.Millisecond

	err := st.WithLock(ctx, "lost", ttl, func(fctx context.Context) error {
		// Someone removes the lock (FLUSHALL, a failover without the key).
		if err := rdb.Del(ctx, testNS+":lock:lost").Err(); err != nil {
			return err
		}
		select {
		case <-fctx.Done():
			return context.Cause(fctx)
		case <-time.After(3 * time.Second):
			return errors.New("fn's context still valid after the lock was lost")
		}
	})
	if err == nil || !strings.Contains(err.Error(), "lock lost") {
		t.Fatalf("WithLock = %v, want fn to see its context end with the lock lost", err)
	}
}

// TestWithLockFencing: every holding gets a larger token; a holder whose
// lock was taken over by a later one fails its fence check, while the
// current holder passes.
func TestWithLockFencing(t *testing.T) {
	t.Parallel()
	st, rdb := lockStore(t)
	ctx := context.Background()
	var tokens []int64
	for range 2 {
		if err := st.WithLock(ctx, "fenced", 5*time.Second, func(fctx context.Context) error {
			if err := scheduler.CheckFence(fctx); err != nil {
				return fmt.Errorf("current holder's fence check: %w", err)
			}
			tokens = append(tokens, fenceOf(t, fctx).Token())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(tokens) != 2 || tokens[1] <= tokens[0] {
		t.Fatalf("tokens %v, want strictly increasing", tokens)
	}

	// A holder paused past its lock's expiry while another replica took
	// the lock (simulated: the lock key is deleted and another holder runs
	// to completion in between).
	err := st.WithLock(ctx, "fenced", 5*time.Second, func(fctx context.Context) error {
		if err := rdb.Del(ctx, testNS+":lock:fenced").Err(); err != nil {
			return err
		}
		if err := st.WithLock(ctx, "fenced", 5*time.Second, func(context.Context) error { return nil }); err != nil {
			return fmt.Errorf("the later holder: %w", err)
		}
		return scheduler.CheckFence(fctx)
	})
	if err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("the superseded holder's fence check = %v, want a stale token error", err)
	}
	if err := scheduler.CheckFence(ctx); err != nil {
		t.Errorf("CheckFence without a fence = %v, want nil", err)
	}
}

func fenceOf(t *testing.T, ctx context.Context) scheduler.Fence {
	t.Helper()
	f, ok := scheduler.FenceFrom(ctx)
	if !ok {
		t.Fatal("no fence in the duty's context")
	}
	return f
}
