package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
)

// WithLock runs fn while holding the namespace's lock called name (redsync),
// so a duty that must run once (table migrations) never runs on two
// replicas at the same time. The lock is extended while fn runs; fn's
// context ends if the lock is lost. WithLock waits for the lock as long as
// ctx allows.
func (s *Store) WithLock(ctx context.Context, name string, ttl time.Duration, fn func(context.Context) error) error {
	rs := redsync.New(goredis.NewPool(s.rdb))
	mu := rs.NewMutex(s.cfg.Namespace+":lock:"+name, redsync.WithExpiry(ttl),
		redsync.WithTries(1<<30), redsync.WithRetryDelay(200*time.Millisecond))
	if err := mu.LockContext(ctx); err != nil {
		return unavailable(fmt.Sprintf("lock %s", name), err)
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
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
			}
		}
	}()
	err := fn(fctx)
	close(done)
	// A failed unlock only delays the next holder: the lock expires on its own.
	_, _ = mu.UnlockContext(context.WithoutCancel(ctx))
	return err
}
