// Package version says which build of Cassata is running: the version,
// commit and build date stamped in with -ldflags by `make build` and the
// Dockerfile, or, for a plain `go build`/`go install`, what the Go toolchain
// recorded (debug.ReadBuildInfo: the module version and the VCS revision).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at build time:
//
//	go build -ldflags "-X github.com/cassata/cassata/internal/version.Version=v1.2.3 \
//	  -X github.com/cassata/cassata/internal/version.Commit=abc1234 \
//	  -X github.com/cassata/cassata/internal/version.Date=2026-12-06T18:00:00Z"
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
}

var (
	once sync.Once
	info Info
)

// Get returns the build's identity: the -ldflags values where set, else
// what debug.ReadBuildInfo recorded, else "dev" and "unknown".
func Get() Info {
	once.Do(func() { info = read(Version, Commit, Date, debug.ReadBuildInfo) })
	return info
}

func read(v, c, d string, build func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi, ok := build(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.Date == "" {
					i.Date = s.Value
				}
			case "vcs.modified":
				i.Modified = s.Value == "true" && c == ""
			}
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if len(i.Commit) > 12 {
		i.Commit = i.Commit[:12]
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Date == "" {
		i.Date = "unknown"
	}
	return i
}

// String is the one-line form `cassata version` prints.
func (i Info) String() string {
	s := fmt.Sprintf("cassata %s (commit %s", i.Version, i.Commit)
	if i.Modified {
		s += "-dirty"
	}
	return s + fmt.Sprintf(", built %s, %s %s/%s)", i.Date, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// UserAgent is what destinations see: "cassata/<version>", exactly as
// API.md §3 has it, with the same version as `cassata version` and
// cassata_build_info.
func (i Info) UserAgent() string {
	return "cassata/" + i.Version
}
