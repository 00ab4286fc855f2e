package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadPrefersLdflags(t *testing.T) {
	bi := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-01-01T00:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}, true
	}
	i := read("v1.2.3", "abc1234", "2026-12-06", bi)
	if i.Version != "v1.2.3" || i.Commit != "abc1234" || i.Date != "2026-12-06" || i.Modified {
		t.Fatalf("ldflags not preferred: %+v", i)
	}
	i = read("", "", "", bi)
	if i.Version != "v0.9.0" || i.Commit != "0123456789ab" || i.Date != "2026-01-01T00:00:00Z" || !i.Modified {
		t.Fatalf("build info not used: %+v", i)
	}
	if !strings.Contains(i.String(), "0123456789ab-dirty") {
		t.Errorf("String() = %q, want the dirty commit", i.String())
	}
}

func TestReadWithoutAnything(t *testing.T) {
	i := read("", "", "", func() (*debug.BuildInfo, bool) { return nil, false })
	if i.Version != "dev" || i.Commit != "unknown" || i.Date != "unknown" {
		t.Fatalf("defaults: %+v", i)
	}
	if ua := i.UserAgent(); ua != "cassata/dev" {
		t.Errorf("UserAgent() = %q", ua)
	}
	devel := func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true }
	if v := read("", "", "", devel).Version; v != "dev" {
		t.Errorf("(devel) should read as dev, got %q", v)
	}
}
