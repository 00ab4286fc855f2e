package redisstore

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cassata/cassata/internal/redistest"
)

func TestPlacementWarning(t *testing.T) {
	t.Parallel()
	ms := func(counts ...int) []MasterShards {
		var out []MasterShards
		sh := 0
		for i, n := range counts {
			m := MasterShards{Addr: "10.0.0." + string(rune('1'+i)) + ":6379"}
			for range n {
				m.Shards = append(m.Shards, sh)
				sh++
			}
			out = append(out, m)
		}
		return out
	}
	tests := []struct {
		name   string
		shards int
		p      []MasterShards
		want   []string // substrings; none: no warning
	}{
		{"single redis", 16, nil, nil},
		{"even", 16, ms(4, 4, 4, 4), nil},
		{"as even as 16 over 3 goes", 16, ms(6, 5, 5), nil},
		{"uneven", 16, ms(7, 3, 6), []string{`namespace "t"`, "10.0.0.1:6379 owns 7 of the 16", "even spread gives 6", "44%", "2.3 times", "0 of 3 masters own none"}},
		{"masters without shards", 16, ms(3, 0, 1, 3, 0, 1, 2, 0, 2, 2, 0, 2), []string{"owns 3 of the 16", "even spread gives 2", "5.3 times", "4 of 12 masters own none", `CLUSTER KEYSLOT "{t:<shard>}"`}},
		{"fewer shards than masters", 2, ms(1, 1, 0), []string{"2 shards for 3 masters", "1 masters get none", "CASSATA_SHARDS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := placementWarning("t", tc.shards, tc.p)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("warning %q, want none", got)
			}
			if len(tc.want) > 0 && got == "" {
				t.Fatal("no warning")
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warning %q lacks %q", got, w)
				}
			}
		})
	}
}

// A single Redis has no placement to check.
func TestShardPlacementSingleRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := b.store.ShardPlacement(context.Background())
	if err != nil || p != nil {
		t.Fatalf("ShardPlacement on one Redis = %v, %v; want nil, nil", p, err)
	}
}

// testClusterPlacement (TestCluster): ShardPlacement lists every master and
// puts each shard on the master the cluster says owns its slot, and Check
// warns exactly when the busiest master owns more than an even spread.
func testClusterPlacement(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	for _, shards := range []int{16, 3, 64} {
		st, _ := clusterStore(t, c, Config{Namespace: "place" + string(rune('a'+shards%26)), Shards: shards})
		p, err := st.ShardPlacement(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		most := 0
		for _, m := range p {
			addrs = append(addrs, m.Addr)
			most = max(most, len(m.Shards))
			for _, sh := range m.Shards {
				owner, err := c.KeyOwner(ctx, st.k.due(sh))
				if err != nil {
					t.Fatal(err)
				}
				if !sameAddrForTest(owner.Addr(), m.Addr) {
					t.Errorf("%d shards: shard %d placed on %s, the cluster says %s", shards, sh, m.Addr, owner.Addr())
				}
			}
		}
		want := slices.Clone(c.Addrs())
		slices.Sort(want)
		if len(addrs) != len(want) {
			t.Fatalf("%d shards: placement lists masters %v, the cluster has %v", shards, addrs, want)
		}
		t.Logf("%d shards over %d masters: %v", shards, len(p), p)

		var logs bytes.Buffer
		if _, err := st.Check(ctx, true, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatal(err)
		}
		even := (shards + len(p) - 1) / len(p)
		if warned := strings.Contains(logs.String(), "uneven shards"); warned != (most > even) {
			t.Errorf("%d shards, busiest master owns %d, even %d: warned %v; logs:\n%s", shards, most, even, warned, logs.String())
		}
	}
}

// sameAddrForTest compares host:port addresses that may spell the host
// differently (localhost, 127.0.0.1).
func sameAddrForTest(a, b string) bool {
	norm := func(s string) string { return strings.Replace(s, "localhost", "127.0.0.1", 1) }
	return norm(a) == norm(b)
}
