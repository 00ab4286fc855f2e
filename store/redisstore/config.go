package redisstore

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cassata/cassata/internal/defaults"
)

// MaxShards bounds Config.Shards: every worker claims from every shard, so
// shards beyond what the masters need only add round trips.
const MaxShards = 1024

// WithDefaults returns the config with zero fields set to their defaults.
// Shards stays zero when unset: New then adopts the namespace's recorded
// count, or DefaultShards for a new namespace.
func (c Config) WithDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	c.Retention = defaults.Positive(c.Retention, DefaultRetention)
	c.WakeHorizon = defaults.Positive(c.WakeHorizon, DefaultWakeHorizon)
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	// The namespace is the prefix of every key and must not carry a hash
	// tag of its own: the shard's tag decides the slot.
	if strings.ContainsAny(c.Namespace, "{} \t\r\n") || len(c.Namespace) > 64 {
		errs = append(errs, fmt.Errorf("redisstore: Namespace %q must be at most 64 characters without braces or spaces", c.Namespace))
	}
	if c.EventLayout != 0 && (c.EventLayout < layoutHash || c.EventLayout > layoutNewest) {
		errs = append(errs, fmt.Errorf("redisstore: EventLayout must be 1 (hashes), 2 (compact), 3 (compact, packed outbox entries) or 4 (those, common headers as codes), not %d", c.EventLayout))
	}
	if c.Shards < 0 || c.Shards > MaxShards {
		errs = append(errs, fmt.Errorf("redisstore: Shards must be between 1 and %d (0: adopt the recorded count), not %d", MaxShards, c.Shards))
	}
	if c.Retention < time.Second {
		errs = append(errs, fmt.Errorf("redisstore: Retention must be at least 1s, not %s", c.Retention))
	}
	if c.WakeHorizon <= 0 {
		errs = append(errs, errors.New("redisstore: WakeHorizon must be positive"))
	}
	return errors.Join(errs...)
}
