package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"

	"github.com/cassata/cassata/scheduler"
)

// WithLock runs fn while holding the namespace's lock called name (redsync),
// so a duty that must run once (table migrations) never runs on two
// replicas at the same time. The lock is extended while fn runs; fn's
// context ends if the lock is lost. WithLock waits for the lock as long as
// ctx allows.
//
// Every acquisition takes a fencing token (INCR <ns>:lock:<name>:fence).
// fn's context carries a scheduler.Fence whose Check fails once the lock is
// lost or a later holder took a newer token, so fn checks it before each
// side effect (archive migrations do, before each step).
func (s *Store) WithLock(ctx context.Context, name string, ttl time.Duration, fn func(context.Context) error) error {
	key := s.cfg.Namespace + ":lock:" + name
	rs := redsync.New(goredis.NewPool(s.rdb))
	mu := rs.NewMutex(key, redsync.WithExpiry(ttl),
		redsync.WithTries(1<<30), redsync.WithRetryDelay(200*time.Millisecond))
	if err := mu.LockContext(ctx); err != nil {
		return unavailable(fmt.Sprintf("lock %s", name), err)
	}
	// A failed unlock only delays the next holder: the lock expires on its own.
	defer func() { _, _ = mu.UnlockContext(context.WithoutCancel(ctx)) }()
	token, err := s.rdb.Incr(ctx, key+":fence").Result()
	if err != nil {
		return unavailable(fmt.Sprintf("lock %s: fencing token", name), err)
	}

	f := &fence{s: s, key: key + ":fence", name: name, token: token}
	f.until.Store(mu.Until().UnixNano())
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	f.ctx = fctx
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if ok, err := mu.ExtendContext(fctx); !ok || err != nil {
					cancel(fmt.Errorf("lock %s lost: %v", name, err))
					return
				}
				// Read here, where ExtendContext wrote it: the mutex is not
				// safe for concurrent use, so Check reads the copy.
				f.until.Store(mu.Until().UnixNano())
			}
		}
	}()
	return fn(scheduler.WithFence(fctx, f))
}

// fence is the scheduler.Fence of one holding of a lock.
type fence struct {
	s     *Store
	key   string
	name  string
	token int64
	until atomic.Int64    // the lock's expiry (Unix ns), updated after each extension
	ctx   context.Context // ends when the extension fails
}

func (f *fence) Token() int64 { return f.token }

func (f *fence) Check(ctx context.Context) error {
	if err := context.Cause(f.ctx); err != nil {
		return fmt.Errorf("lock %s (token %d): %w", f.name, f.token, err)
	}
	if until := time.Unix(0, f.until.Load()); time.Now().After(until) {
		return fmt.Errorf("lock %s (token %d) expired at %s", f.name, f.token, until.Format(time.RFC3339Nano))
	}
	cur, err := f.s.rdb.Get(ctx, f.key).Int64()
	if err != nil {
		return unavailable(fmt.Sprintf("lock %s: check fencing token", f.name), err)
	}
	if cur != f.token {
		return fmt.Errorf("lock %s: token %d is stale, a later holder has token %d", f.name, f.token, cur)
	}
	return nil
}
