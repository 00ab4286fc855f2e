package redistest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
)

func TestStartCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)

	addrs := c.Addrs()
	if len(addrs) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs() = %v, want 3 masters", addrs)
	}
	if c.Seeds() != strings.Join(addrs, ",") {
		t.Errorf("Seeds() = %q, want %q", c.Seeds(), strings.Join(addrs, ","))
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
			t.Errorf("Addrs() = %v: want distinct 127.0.0.1 addresses", addrs)
		}
		seen[a] = true
	}

	// Every master serves a third of the slots.
	for _, n := range c.Nodes() {
		info, err := n.Client().ClusterInfo(ctx).Result()
		if err != nil {
			t.Fatalf("CLUSTER INFO on %s: %v", n.Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			t.Errorf("CLUSTER INFO on %s:\n%s", n.Addr(), info)
		}
	}
	ranges, err := c.Client().ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	for _, r := range ranges {
		perNode[r.Nodes[0].Addr] += r.End - r.Start + 1
	}
	var total int
	for addr, n := range perNode {
		total += n
		if n < redistest.ClusterSlots/3-1 || n > redistest.ClusterSlots/3+1 {
			t.Errorf("%s serves %d slots, want about %d", addr, n, redistest.ClusterSlots/3)
		}
	}
	if total != redistest.ClusterSlots || len(perNode) != 3 {
		t.Errorf("slots per node %v: want all %d over 3 nodes", perNode, redistest.ClusterSlots)
	}

	// Keys written through the cluster client land on the master that
	// KeyOwner names, and spread over every master.
	const keys = 300
	for i := range keys {
		if err := c.Client().Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	for i := range 30 {
		key := fmt.Sprintf("k%d", i)
		owner, err := c.KeyOwner(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := owner.Client().Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Errorf("%s not on %s, its owner: %d, %v", key, owner.Addr(), n, err)
		}
	}
	var sum int64
	for _, n := range c.Nodes() {
		size, err := n.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			t.Errorf("master %s holds no key of %d", n.Addr(), keys)
		}
		sum += size
	}
	if sum != keys {
		t.Errorf("masters hold %d keys, want %d", sum, keys)
	}
}

// TestClusterCrossSlot: the cluster refuses a command spanning slots and
// accepts it when a hash tag puts the keys in one slot. This is the rule
// Cassata's shard keys and scripts rely on.
func TestClusterCrossSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	owner, err := c.KeyOwner(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Sent to the owner of "a" directly: a cluster client would refuse it before sending.
	err = owner.Client().MSet(ctx, "a", 1, "b", 2).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
		t.Fatalf("MSET a b on one node: err = %v, want CROSSSLOT", err)
	}
	if err := c.Client().MSet(ctx, "{t}a", 1, "{t}b", 2).Err(); err != nil {
		t.Fatalf("MSET {t}a {t}b: %v", err)
	}
}

// TestClusterNodeRestart: a master restarted on its port rejoins from its
// nodes.conf with its slots (without persistence its keys are gone), and a
// cluster client reconnects by itself.
func TestClusterNodeRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	rdb := c.Client()
	if err := rdb.Set(ctx, "before", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	owner, err := c.KeyOwner(ctx, "before")
	if err != nil {
		t.Fatal(err)
	}
	owner.Restart(t)
	wctx, cancel := context.WithTimeout(ctx, redistest.ClusterTimeout)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatalf("cluster after restarting %s: %v", owner.Addr(), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Get(ctx, "before").Err()
		if err == redis.Nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET through the cluster client after the restart: %v, want redis.Nil", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if again, err := c.KeyOwner(ctx, "before"); err != nil || again != owner {
		t.Errorf("after restart the key's slot moved to %v (%v)", again, err)
	}
}

func TestStartClusterAOF(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, redistest.WithAOF())
	for _, n := range c.Nodes() {
		v, err := n.Client().ConfigGet(ctx, "appendonly").Result()
		if err != nil || v["appendonly"] != "yes" {
			t.Errorf("%s: appendonly = %v (%v), want yes", n.Addr(), v, err)
		}
	}
}
