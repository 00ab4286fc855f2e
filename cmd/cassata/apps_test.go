package main

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// TestAppsExitCodes: `cassata apps` exits 0 when it did what was asked and
// 1 when it could not (the command itself is tested in internal/appcli).
func TestAppsExitCodes(t *testing.T) {
	mr := miniredis.RunT(t)
	t.Setenv("CASSATA_NAMESPACE", "clitest")
	url := "redis://" + mr.Addr()
	if code := run([]string{"apps", "list", "--redis-url", url}); code != 0 {
		t.Errorf("run apps list = %d", code)
	}
	if code := run([]string{"apps", "rotate", "ghost", "--redis-url", url}); code != 1 {
		t.Errorf("run apps rotate ghost = %d, want 1", code)
	}
}
