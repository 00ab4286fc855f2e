package testbin_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/cassata/cassata/internal/testbin"
)

func TestSharedBuildsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/cassata")
	}
	bin, err := testbin.Shared()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testbin.RemoveShared)
	again, err := testbin.Shared()
	if err != nil || again != bin {
		t.Errorf("second Shared = %q, %v; want %q", again, err, bin)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if !strings.Contains(string(out), "cassata") {
		t.Errorf("%s --help (%v):\n%s", bin, err, out)
	}
}
