// Package testbin builds the cassata binary for the tests and the bench
// that run it as a real process, so they run what ships. It builds
// ./cmd/cassata of the module the working directory is in; the go command
// caches the work, so a second build of unchanged code costs a link.
//
// A test that needs the binary once takes BuildT; a package that starts
// many processes takes Shared, built once per test binary, and removes it
// from TestMain with RemoveShared.
package testbin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Build builds ./cmd/cassata into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the cassata module")
	}
	bin := filepath.Join(dir, "cassata")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cassata")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/cassata: %w\n%s", err, out)
	}
	return bin, nil
}

// BuildT builds the binary into a directory of t and returns its path,
// failing t when the build fails.
func BuildT(t testing.TB) string {
	t.Helper()
	bin, err := Build(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var (
	sharedMu  sync.Mutex
	sharedDir string
	sharedBin string
	sharedErr error
)

// Shared builds the binary on first use, into a temporary directory shared
// by the test binary, and returns its path; later calls return the same
// path (or the same error).
func Shared() (string, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedBin != "" || sharedErr != nil {
		return sharedBin, sharedErr
	}
	sharedDir, sharedErr = os.MkdirTemp("", "cassata-testbin-")
	if sharedErr == nil {
		sharedBin, sharedErr = Build(context.Background(), sharedDir)
	}
	return sharedBin, sharedErr
}

// RemoveShared removes what Shared built. Call it from TestMain after m.Run.
func RemoveShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDir != "" {
		_ = os.RemoveAll(sharedDir)
	}
	sharedDir, sharedBin, sharedErr = "", "", nil
}
