package worker

import (
	"testing"

	"github.com/cassata/cassata/scheduler"
)

func cr(shard, batch int) scheduler.ClaimRequest {
	return scheduler.ClaimRequest{Shard: shard, Batch: batch}
}

func TestClaimShares(t *testing.T) {
	t.Parallel()
	w := &Worker{cfg: Config{Batch: 10}}
	total := func(reqs []scheduler.ClaimRequest) int {
		n := 0
		for _, r := range reqs {
			n += r.Batch
		}
		return n
	}
	hotOf := func(shards int, hot ...int) []bool {
		h := make([]bool, shards)
		for _, s := range hot {
			h[s] = true
		}
		return h
	}
	for _, tt := range []struct {
		name        string
		free, start int
		hot         []bool
		want        []scheduler.ClaimRequest
	}{
		{"fewer slots than shards: all from the shard at start", 3, 2, hotOf(4, 0),
			[]scheduler.ClaimRequest{cr(2, 3)}},
		{"as many slots as shards: one each", 4, 1, hotOf(4), []scheduler.ClaimRequest{cr(1, 1), cr(2, 1), cr(3, 1), cr(0, 1)}},
		{"none hot: split evenly, the remainder from start", 10, 0, hotOf(4),
			[]scheduler.ClaimRequest{cr(0, 3), cr(1, 3), cr(2, 2), cr(3, 2)}},
		{"hot shards share the rest, the others one each", 10, 0, hotOf(4, 1, 3),
			[]scheduler.ClaimRequest{cr(0, 1), cr(1, 4), cr(2, 1), cr(3, 4)}},
		{"at most Batch per shard", 100, 0, hotOf(4, 2),
			[]scheduler.ClaimRequest{cr(0, 1), cr(1, 1), cr(2, 10), cr(3, 1)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := w.claimShares(tt.free, tt.start, tt.hot)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
			if total(got) > tt.free {
				t.Errorf("asks for %d events with %d free slots", total(got), tt.free)
			}
		})
	}
}
