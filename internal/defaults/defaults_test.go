package defaults_test

import (
	"testing"
	"time"

	"github.com/cassata/cassata/internal/defaults"
)

func TestPositive(t *testing.T) {
	t.Parallel()
	if got := defaults.Positive(0, 7); got != 7 {
		t.Errorf("Positive(0, 7) = %d, want the default 7", got)
	}
	if got := defaults.Positive(-3, 7); got != 7 {
		t.Errorf("Positive(-3, 7) = %d, want the default 7", got)
	}
	if got := defaults.Positive(2, 7); got != 2 {
		t.Errorf("Positive(2, 7) = %d, want the value set, 2", got)
	}
	if got := defaults.Positive(time.Duration(0), time.Second); got != time.Second {
		t.Errorf("Positive(0s, 1s) = %s, want 1s", got)
	}
	if got := defaults.Positive(0.5, 2.0); got != 0.5 {
		t.Errorf("Positive(0.5, 2) = %g, want 0.5", got)
	}
}
