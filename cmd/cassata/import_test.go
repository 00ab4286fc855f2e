package main

import "testing"

// TestImportUsageExitCode: `cassata import` without a source exits 2, its
// usage status (the command itself is tested in internal/legacyimport).
func TestImportUsageExitCode(t *testing.T) {
	if code := run([]string{"import"}); code != 2 {
		t.Errorf("run import = %d, want 2", code)
	}
	if code := run([]string{"import", "--help"}); code != 0 {
		t.Errorf("run import --help = %d, want 0", code)
	}
}
