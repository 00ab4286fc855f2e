package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
)

// ErrorClass is what a caller may do about an error from Redis.
type ErrorClass int

const (
	// Permanent: retrying the same call fails the same way (a wrong
	// password, a shard count mismatch, a script error).
	Permanent ErrorClass = iota
	// Transient: Redis is unreachable, restarting, loading its data or
	// failing over; the same call may succeed later.
	Transient
	// Canceled: the caller's context was canceled.
	Canceled
)

func (c ErrorClass) String() string {
	switch c {
	case Transient:
		return "transient"
	case Canceled:
		return "canceled"
	}
	return "permanent"
}

// transientPrefixes are the Redis error replies of a server that is
// starting, failing over or briefly unable to serve.
var transientPrefixes = []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY"}

// unavailablePrefixes are the error codes of replies that make an
// operation fail with scheduler.ErrUnavailable (503, nothing accepted):
// the transient ones, and a Redis out of memory or unable to persist,
// which an operator must fix but which are no fault of the request.
var unavailablePrefixes = append([]string{"OOM", "MISCONF"}, transientPrefixes...)

// Classify tells transient errors from permanent ones by their type: a
// context error, a network error (net.Error, *net.OpError, ECONNREFUSED,
// ECONNRESET, EOF from a closed connection), a go-redis pool timeout, or a
// Redis error reply whose prefix (LOADING, READONLY, ...) says the
// server is not ready yet. It never reads error text beyond the reply's
// prefix, which is Redis's own error code.
func Classify(err error) ErrorClass {
	switch {
	case err == nil:
		return Permanent
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Transient
	}
	if errors.Is(err, scheduler.ErrUnavailable) {
		return Transient // the store has classified it already
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// A reply from Redis: only the prefixes above are worth waiting for.
		for _, p := range transientPrefixes {
			if redis.HasErrorPrefix(rerr, p) {
				return Transient
			}
		}
		return Permanent
	}
	var oe *net.OpError
	var ne net.Error
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return Transient
	}
	return Permanent
}

// IsTransient reports whether err is worth retrying later (Classify).
func IsTransient(err error) bool { return Classify(err) == Transient }
