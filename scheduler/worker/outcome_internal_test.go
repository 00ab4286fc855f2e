package worker

import (
	"testing"

	"github.com/cassata/cassata/scheduler"
)

func TestOutcomeLabel(t *testing.T) {
	for _, c := range []struct {
		st   scheduler.Status
		held bool
		want string
	}{
		{scheduler.StatusCompleted, true, scheduler.OutcomeCompleted},
		{scheduler.StatusFailed, true, scheduler.OutcomeFailed},
		{scheduler.StatusServiceUnavailable, true, scheduler.OutcomeServiceUnavailable},
		{scheduler.StatusPending, true, scheduler.OutcomeRetry},
		{scheduler.StatusCompleted, false, scheduler.OutcomeStale},
	} {
		if got := outcomeLabel(c.st, c.held); got != c.want {
			t.Errorf("outcomeLabel(%s, held %v) = %q, want %q", c.st, c.held, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { outcomeLabel(scheduler.StatusFailed, true) }); n != 0 {
		t.Errorf("outcomeLabel allocates %v times per delivery", n)
	}
}
