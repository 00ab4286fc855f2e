package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// NodeInfo is what Cassata needs to know about one Redis server (each master
// of a cluster): read from INFO, which managed Redis services keep even when
// they rename CONFIG.
type NodeInfo struct {
	Addr            string // as the client knows it
	RunID           string // changes on every restart of the server
	Version         string
	MaxmemoryPolicy string
	AOF             bool // appendonly is on
}

// Nodes returns the INFO of the Redis server, or of every master of a
// cluster, ordered by address.
func (s *Store) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var nodes []NodeInfo
	read := func(ctx context.Context, c *redis.Client) (NodeInfo, error) {
		txt, err := c.Info(ctx, "server", "memory", "persistence").Result()
		if err != nil {
			return NodeInfo{}, unavailable("INFO "+c.Options().Addr, err)
		}
		return parseNodeInfo(c.Options().Addr, txt), nil
	}
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		// ForEachMaster calls fn for every master at once: collect under a
		// lock (a buffered channel read afterwards would block for ever
		// on a cluster with more masters than its buffer).
		var mu sync.Mutex
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := read(ctx, m)
			if err == nil {
				mu.Lock()
				nodes = append(nodes, n)
				mu.Unlock()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	case *redis.Client:
		n, err := read(ctx, c)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	default:
		return nil, fmt.Errorf("redisstore: unsupported client %T", s.rdb)
	}
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return strings.Compare(a.Addr, b.Addr) })
	return nodes, nil
}

// parseNodeInfo reads the fields of NodeInfo from the text of INFO.
func parseNodeInfo(addr, info string) NodeInfo {
	n := NodeInfo{Addr: addr}
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "run_id":
			n.RunID = v
		case "redis_version":
			n.Version = v
		case "maxmemory_policy":
			n.MaxmemoryPolicy = v
		case "aof_enabled":
			n.AOF = v == "1"
		}
	}
	return n
}

// CheckNoEviction returns an error naming every node whose maxmemory-policy
// is not noeviction: under memory pressure such a Redis deletes keys, and a
// deleted event hash or due entry is an acknowledged event silently lost.
func CheckNoEviction(nodes []NodeInfo) error {
	var bad []string
	for _, n := range nodes {
		if n.MaxmemoryPolicy != "noeviction" {
			bad = append(bad, fmt.Sprintf("%s has %q", n.Addr, n.MaxmemoryPolicy))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("redis maxmemory-policy must be noeviction, but %s: under memory pressure Redis would evict "+
		"scheduled events and they would be lost without a trace; set `maxmemory-policy noeviction` in redis.conf "+
		"(and CONFIG SET maxmemory-policy noeviction on the running server)", strings.Join(bad, ", "))
}
