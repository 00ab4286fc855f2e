package worker

import (
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestShardPlan: after a full round a plan asks the shards whose next due
// time has come, the woken, failed and hot ones, and all of them once
// fullRoundEvery has passed.
func TestShardPlan(t *testing.T) {
	t.Parallel()
	p := newShardPlan(4)
	hot := make([]bool, 4)
	const poll = time.Hour // fullRoundEvery applies
	if got := p.order(0, 0, poll, hot); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("first round asks %v, want every shard", got)
	}
	now := time.UnixMilli(1_700_000_000_000)
	for sh := range 4 {
		p.asking(sh)
	}
	p.answered(0, scheduler.Claim{Now: now, NextDue: now.Add(100 * time.Millisecond)}, 0)
	p.answered(1, scheduler.Claim{Now: now}, 0) // empty
	p.answered(2, scheduler.Claim{Now: now, NextDue: now.Add(time.Minute)}, 0)
	p.answered(3, scheduler.Claim{Now: now}, 0)
	if got := p.order(1, 50*time.Millisecond, poll, hot); len(got) != 0 {
		t.Errorf("at +50ms the plan asks %v, want none", got)
	}
	if d := p.untilNext(50 * time.Millisecond); d != 50*time.Millisecond {
		t.Errorf("at +50ms the plan sleeps %v, want 50ms (shard 0's next due time)", d)
	}
	hot[3] = true
	p.claimFailed(1)
	if got := p.order(0, 100*time.Millisecond, poll, hot); !slices.Equal(got, []int{0, 1, 3}) {
		t.Errorf("at +100ms the plan asks %v, want [0 1 3] (due, failed, hot)", got)
	}
	hot[3] = false
	for _, sh := range []int{0, 1} {
		p.asking(sh)
		p.answered(sh, scheduler.Claim{Now: now.Add(100 * time.Millisecond)}, 100*time.Millisecond)
	}
	if d := p.untilNext(100 * time.Millisecond); d != fullRoundEvery-100*time.Millisecond {
		t.Errorf("with nothing due soon the plan sleeps %v, want until the next full round (%v)", d, fullRoundEvery-100*time.Millisecond)
	}
	if got := p.order(2, fullRoundEvery, poll, hot); !slices.Equal(got, []int{2, 3, 0, 1}) {
		t.Errorf("after fullRoundEvery the plan asks %v, want every shard from 2 on", got)
	}
}

// TestShardPlanEachShardOnItsOwnClock: on a Redis Cluster each shard's
// claim compares due times with its own master's clock, and masters'
// clocks differ. Shard 0's master reported its next due time 100 ms ahead;
// shard 1's master, 500 ms behind, replied last. The plan must still ask
// shard 0 100 ms later, not once the other master's clock gets there.
func TestShardPlanEachShardOnItsOwnClock(t *testing.T) {
	t.Parallel()
	p := newShardPlan(2)
	hot := make([]bool, 2)
	p.order(0, 0, time.Hour, hot)
	p.asking(0)
	p.asking(1)
	aNow := time.UnixMilli(1_700_000_000_000)
	bNow := aNow.Add(-500 * time.Millisecond)
	p.answered(0, scheduler.Claim{Now: aNow, NextDue: aNow.Add(100 * time.Millisecond)}, 0)
	p.answered(1, scheduler.Claim{Now: bNow, NextDue: bNow.Add(time.Minute)}, 0)
	if d := p.untilNext(20 * time.Millisecond); d != 80*time.Millisecond {
		t.Errorf("at +20ms the plan sleeps %v, want 80ms (shard 0 is due at +100ms on its master's clock)", d)
	}
	if got := p.order(0, 150*time.Millisecond, time.Hour, hot); !slices.Equal(got, []int{0}) {
		t.Errorf("at +150ms the plan asks %v, want [0]", got)
	}
}
