package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/testproc"
)

const (
	// ClusterSlots is the number of hash slots of every Redis Cluster.
	ClusterSlots = 16384

	// ClusterTimeout bounds how long StartCluster waits for `redis-cli
	// --cluster create` and then for every node to agree the cluster is up.
	ClusterTimeout = 30 * time.Second

	// ClusterNodeTimeout is each node's --cluster-node-timeout: short, so a
	// test that stops a master sees the cluster react within seconds.
	ClusterNodeTimeout = 2 * time.Second
)

// Cluster is a Redis Cluster of masters only (no replicas): each master a
// redis-server process owned by the test, on its own free loopback port
// (and cluster bus port) with its own data directory.
type Cluster struct {
	nodes []*Server

	mu     sync.Mutex
	client *redis.ClusterClient
}

// StartCluster launches masters redis-server processes in cluster mode
// (--cluster-enabled yes, nodes.conf in each node's directory, no
// persistence unless an option turns it on), joins them with `redis-cli
// --cluster create ... --cluster-replicas 0`, which splits the 16384 slots
// evenly, and waits until every node reports cluster_state:ok with every
// slot covered and every master known. Options apply to every node. Nodes
// and client are stopped when the test ends. Like Start, it skips when
// redis-server or redis-cli is missing, unless CASSATA_REQUIRE_REDIS=1.
func StartCluster(t testing.TB, masters int, opts ...Option) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: redis-cli creates clusters of 3 masters or more, asked for %d", masters)
	}
	bin, errSrv := exec.LookPath("redis-server")
	cli, errCLI := exec.LookPath("redis-cli")
	if err := errors.Join(errSrv, errCLI); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server or redis-cli not found on PATH and %s=1: %v", RequireEnv, err)
		}
		t.Skip("redis-server or redis-cli not installed")
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}

	c := &Cluster{}
	for range masters {
		c.nodes = append(c.nodes, startNode(t, bin, cfg))
	}
	// Cleanups run last-in first-out: the client goes before the servers,
	// so it does not log failed topology reloads while they stop.
	t.Cleanup(c.closeClient)

	ctx, cancel := context.WithTimeout(context.Background(), ClusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("redistest: cluster %s not ready: %v\nredis-cli output:\n%s", c.Seeds(), err, out)
	}
	return c
}

// startNode starts one cluster-mode redis-server. Besides its client port
// each node listens on a cluster bus port, by default the client port +
// 10000, which is past 65535 for much of the ephemeral range: both are
// picked free and the bus port is passed as --cluster-port.
func startNode(t testing.TB, bin string, cfg config) *Server {
	t.Helper()
	s := &Server{bin: bin, dir: t.TempDir()}
	base := append(baseArgs(s.dir, cfg),
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(ClusterNodeTimeout.Milliseconds(), 10),
	)
	t.Cleanup(s.shutdown)

	err := testproc.OnFreePort(func(port int) error {
		bus, err := testproc.FreePort()
		if err != nil {
			return err
		}
		if port == bus {
			return fmt.Errorf("client and bus port %d: %w", port, testproc.ErrAddrInUse)
		}
		// The bus port stays fixed across Restart, like the client port.
		s.args = append(append(slices.Clone(base), "--cluster-port", strconv.Itoa(bus)), cfg.args...)
		return s.launch(port)
	})
	if err != nil {
		t.Fatalf("redistest: start cluster node: %v", err)
	}
	return s
}

// Nodes returns the masters in the order their slots were assigned: the
// first holds the lowest slots.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Addrs returns every master's host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// Seeds returns the comma-separated host:port of every master: the form
// CASSATA_REDIS_URL takes with CASSATA_REDIS_CLUSTER=true.
func (c *Cluster) Seeds() string { return strings.Join(c.Addrs(), ",") }

// Client returns a go-redis cluster client seeded with every master,
// created on first use and closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = c.NewClient()
	}
	return c.client
}

// NewClient returns a new cluster client seeded with every master, as
// another process would have one; the caller closes it.
func (c *Cluster) NewClient() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
}

// SlotOwner returns the master that serves slot, by CLUSTER SLOTS on the
// first node.
func (c *Cluster) SlotOwner(ctx context.Context, slot int) (*Server, error) {
	ranges, err := c.nodes[0].Client().ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	for _, r := range ranges {
		if slot < r.Start || slot > r.End || len(r.Nodes) == 0 {
			continue
		}
		for _, n := range c.nodes {
			if sameAddr(n.Addr(), r.Nodes[0].Addr) {
				return n, nil
			}
		}
		return nil, fmt.Errorf("slot %d is served by %s, which is none of %s", slot, r.Nodes[0].Addr, c.Seeds())
	}
	return nil, fmt.Errorf("slot %d is not assigned", slot)
}

// KeyOwner returns the master that serves key (CLUSTER KEYSLOT, then
// SlotOwner).
func (c *Cluster) KeyOwner(ctx context.Context, key string) (*Server, error) {
	slot, err := c.nodes[0].Client().ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER KEYSLOT %s: %w", key, err)
	}
	return c.SlotOwner(ctx, int(slot))
}

// WaitReady waits until every node reports cluster_state:ok, all 16384
// slots assigned and ok, and knows every master: only then does every node
// route every key (a node that has not heard of the others yet answers
// CLUSTERDOWN). Call it again after restarting a node.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		err := c.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) ready(ctx context.Context) error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(ClusterSlots),
		"cluster_slots_ok":       strconv.Itoa(ClusterSlots),
		"cluster_size":           strconv.Itoa(len(c.nodes)),
		"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
	}
	for _, n := range c.nodes {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		txt, err := n.Client().ClusterInfo(cctx).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr(), err)
		}
		info := map[string]string{}
		for line := range strings.Lines(txt) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				info[k] = v
			}
		}
		for k, v := range want {
			if info[k] != v {
				return fmt.Errorf("%s: %s is %q, want %q", n.Addr(), k, info[k], v)
			}
		}
	}
	return nil
}

func sameAddr(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return a == b
	}
	if ha == "" || ha == "localhost" {
		ha = "127.0.0.1"
	}
	if hb == "" || hb == "localhost" {
		hb = "127.0.0.1"
	}
	return pa == pb && ha == hb
}

func (c *Cluster) closeClient() {
	c.mu.Lock()
	cl := c.client
	c.client = nil
	c.mu.Unlock()
	if cl != nil {
		_ = cl.Close()
	}
}
