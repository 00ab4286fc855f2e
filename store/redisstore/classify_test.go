package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
)

// replyError is a Redis error reply as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestClassify(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want ErrorClass
	}{
		{"nil", nil, Permanent},
		{"canceled", fmt.Errorf("record shard count: %w", context.Canceled), Canceled},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), Transient},
		{"connection refused", fmt.Errorf("record shard count: %w", refused), Transient},
		{"bare ECONNREFUSED", syscall.ECONNREFUSED, Transient},
		{"reset", syscall.ECONNRESET, Transient},
		{"EOF", fmt.Errorf("read: %w", io.EOF), Transient},
		{"pool timeout", redis.ErrPoolTimeout, Transient},
		{"dns", &net.DNSError{Err: "no such host", Name: "redis", IsNotFound: true}, Transient},
		{"LOADING", fmt.Errorf("load scripts: %w", replyError("LOADING Redis is loading the dataset in memory")), Transient},
		{"READONLY", replyError("READONLY You can't write against a read only replica."), Transient},
		{"CLUSTERDOWN", replyError("CLUSTERDOWN The cluster is down"), Transient},
		{"MASTERDOWN", replyError("MASTERDOWN Link with MASTER is down"), Transient},
		{"TRYAGAIN", replyError("TRYAGAIN Multiple keys request during rehashing of slot"), Transient},
		{"BUSY", replyError("BUSY Redis is busy running a script"), Transient},
		{"WRONGPASS", replyError("WRONGPASS invalid username-password pair"), Permanent},
		{"NOAUTH", replyError("NOAUTH Authentication required."), Permanent},
		{"script error", replyError("ERR Error running script"), Permanent},
		// Text alone is not a type: a message that merely mentions a
		// refused connection is not a network error.
		{"text only", errors.New("connection refused"), Permanent},
		{"store unavailable", fmt.Errorf("ping: %w: %w", scheduler.ErrUnavailable, errors.New("x")), Transient},
		{"shard mismatch", errors.New(`namespace "x" has 16 shards, configured 8`), Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify(%v) = %s, want %s", tt.name, tt.err, got, tt.want)
		}
		if got := IsTransient(tt.err); got != (tt.want == Transient) {
			t.Errorf("%s: IsTransient = %v", tt.name, got)
		}
	}
}
