package redisstore

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-memory Redis inside this process, for `cassata dev`
// only: what it holds is lost when the process stops.
type Embedded struct{ mr *miniredis.Miniredis }

// StartEmbedded starts an in-memory Redis on a free loopback port.
func StartEmbedded() (*Embedded, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	return &Embedded{mr: mr}, nil
}

// URL is the redis:// URL of the embedded server.
func (e *Embedded) URL() string { return "redis://" + e.mr.Addr() }

// Close stops the embedded server.
func (e *Embedded) Close() { e.mr.Close() }
