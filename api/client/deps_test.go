package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyStandardLibrary: importing the client must not pull in the
// server (gin, go-redis, templ, ...) nor any other module: only the
// standard library and the package itself.
func TestOnlyStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const self = "github.com/cassata/cassata/api/client"
	var seen bool
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == self:
			seen = true
		case strings.HasPrefix(line, self+"/"):
			// a subpackage of the client would be fine
		default:
			t.Errorf("api/client depends on %s: only the standard library is allowed", line)
		}
	}
	if !seen {
		t.Errorf("go list did not list %s itself:\n%s", self, out)
	}
}
