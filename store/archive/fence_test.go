package archive

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cassata/cassata/scheduler"
)

// lostFence is a fence whose holding was taken over.
type lostFence struct{}

func (lostFence) Token() int64                { return 1 }
func (lostFence) Check(context.Context) error { return errors.New("token 1 is stale") }

// TestMigrateStopsOnALostFence: a migration run under a lock that another
// replica took over applies nothing.
func TestMigrateStopsOnALostFence(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Migrate(scheduler.WithFence(ctx, lostFence{}))
	if err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("Migrate with a lost fence = %v, want the fence's error", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Errorf("schema version after the refused migration = %d, %v; want 0", v, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate without a fence: %v", err)
	}
}
