package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A shard is one Redis Cluster slot (its hash tag), so a namespace's
// throughput on a cluster is bounded by the master that owns the most of
// its shards' slots (README "Scaling out"). Redis Cluster spreads slot
// ranges, not these S slots: the slots of {<ns>:0} … {<ns>:S-1} land
// unevenly on equal ranges, and some masters may own none. Check warns
// about it at start, naming the slots an operator can move.

// MasterShards is one master of a cluster and the namespace's shards whose
// slots it owns.
type MasterShards struct {
	Addr   string
	Shards []int
}

// ShardPlacement returns, for a Redis Cluster, every master with the shards
// it owns, ordered by address; nil for a single Redis.
func (s *Store) ShardPlacement(ctx context.Context) ([]MasterShards, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil, nil
	}
	owned := map[string][]int{}
	var mu sync.Mutex
	if err := cc.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		owned[m.Options().Addr] = nil
		return nil
	}); err != nil {
		return nil, unavailable("list masters", err)
	}
	for sh := range s.cfg.Shards {
		m, err := cc.MasterForKey(ctx, s.k.due(sh))
		if err != nil {
			return nil, unavailable(fmt.Sprintf("master of shard %d", sh), err)
		}
		owned[m.Options().Addr] = append(owned[m.Options().Addr], sh)
	}
	out := make([]MasterShards, 0, len(owned))
	for addr, shards := range owned {
		out = append(out, MasterShards{Addr: addr, Shards: shards})
	}
	slices.SortFunc(out, func(a, b MasterShards) int { return strings.Compare(a.Addr, b.Addr) })
	return out, nil
}

// placementWarning describes what an uneven placement costs, or returns ""
// when the busiest master owns no more shards than an even spread would
// give it (⌈S/N⌉).
func placementWarning(ns string, shards int, p []MasterShards) string {
	if len(p) == 0 || shards <= 0 {
		return ""
	}
	even := (shards + len(p) - 1) / len(p)
	busiest := slices.MaxFunc(p, func(a, b MasterShards) int { return len(a.Shards) - len(b.Shards) })
	idle := 0
	for _, m := range p {
		if len(m.Shards) == 0 {
			idle++
		}
	}
	if len(busiest.Shards) <= even {
		if idle > 0 { // fewer shards than masters
			return fmt.Sprintf("namespace %q has %d shards for %d masters: %d masters get none of its events; "+
				"a namespace created with more shards (CASSATA_SHARDS) would use them", ns, shards, len(p), idle)
		}
		return ""
	}
	return fmt.Sprintf("namespace %q: master %s owns %d of the %d shards' slots where an even spread gives %d, "+
		"so it carries %.0f%% of the events and bounds the cluster at %.1f times one master's throughput (%d of %d masters own none); "+
		"move shard slots (CLUSTER KEYSLOT \"{%s:<shard>}\") from it to the masters with fewer (README \"Scaling out\")",
		ns, busiest.Addr, len(busiest.Shards), shards, even,
		100*float64(len(busiest.Shards))/float64(shards), float64(shards)/float64(len(busiest.Shards)),
		idle, len(p), ns)
}
