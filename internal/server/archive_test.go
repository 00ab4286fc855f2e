package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// lagOutbox answers OutboxLag only.
type lagOutbox struct {
	scheduler.Store
	n   int64
	err error
}

func (o lagOutbox) OutboxLag(context.Context) (int64, time.Time, error) {
	return o.n, time.Time{}, o.err
}

// TestArchiveLagHidesErrors: /readyz's details are public; a failing outbox
// read shows as unavailable, not as the Redis error.
func TestArchiveLagHidesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    lagOutbox
		want string
	}{
		{"reachable", lagOutbox{n: 3}, "map[entries:3 lag_seconds:0]"},
		{"unreachable", lagOutbox{err: errors.New("dial tcp 10.1.2.3:6379: NOAUTH Authentication required")}, "map[status:unavailable]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprint(archiveLag(context.Background(), tt.o)); got != tt.want {
				t.Fatalf("archiveLag = %s, want %s", got, tt.want)
			}
		})
	}
}
