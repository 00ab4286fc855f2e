package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/cli"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/version"
)

// execute runs the command line in this process and returns its exit
// status, stdout and stderr.
func execute(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout bytes.Buffer
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	code := cli.Execute(context.Background(), rootCommand(&stdout, stderr), args, stderr)
	errText, _ := os.ReadFile(stderr.Name())
	return code, stdout.String(), string(errText)
}

// TestCLIUsageErrors: an unknown command, subcommand or flag, a flag's
// bad value or a stray argument says so and exits 2, before any
// configuration is read.
func TestCLIUsageErrors(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "a command is required"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"sever"}, `did you mean server?`},
		{[]string{"server", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"server", "--concurrency", "5"}, "unknown flag: --concurrency"}, // a worker's flag
		{[]string{"worker", "--concurrency", "lots"}, "invalid argument"},
		{[]string{"worker", "--poll-interval", "5"}, "must be a duration"},
		{[]string{"server", "--redis-cluster", "true"}, `unexpected argument "true"`},
		{[]string{"apps", "bogus"}, `unknown apps subcommand "bogus"`},
		{[]string{"apps"}, "a subcommand is required"},
		{[]string{"apps", "create"}, "expected 1 argument"},
		{[]string{"apps", "list", "--grace", "1h"}, "unknown flag: --grace"},
		{[]string{"service"}, "service start"},
		{[]string{"service", "stop"}, `unknown service subcommand "stop"`},
		{[]string{"import", "extra"}, "extra"},
		{[]string{"version", "extra"}, "extra"},
	} {
		code, _, stderr := execute(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("cassata %s: exit %d, %q; want 2 and %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
		if strings.Contains(stderr, "CASSATA_REDIS_URL") {
			t.Errorf("cassata %s complains about the Redis URL: %s", strings.Join(tt.args, " "), stderr)
		}
	}
}

// TestCLIHelp: every command's --help shows its flags with descriptions
// and defaults, and its environment variables.
func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"dev"}, {"server"}, {"worker"}, {"migrate"}, {"apps"}, {"apps", "list"}, {"import"}, {"healthcheck"},
		{"service", "start"}, {"worker", "start"},
	} {
		mode := args[0]
		if mode == "service" {
			mode = config.ModeServer
		}
		code, out, stderr := execute(t, append(args, "--help")...)
		if code != 0 || stderr != "" {
			t.Errorf("%v --help: exit %d, %s", args, code, stderr)
		}
		for _, s := range config.Settings {
			if !s.For(mode) {
				if s.Flag != "" && strings.Contains(out, "--"+s.Flag+" ") && s.Flag != "listen" {
					t.Errorf("%v --help shows --%s, not one of its flags", args, s.Flag)
				}
				continue
			}
			if !strings.Contains(out, s.Env) {
				t.Errorf("%v --help does not list %s:\n%s", args, s.Env, out)
			}
			if s.Flag != "" && !strings.Contains(out, "--"+s.Flag) {
				t.Errorf("%v --help does not list --%s", args, s.Flag)
			}
		}
		if !strings.Contains(out, "CASSATA_CONFIG") {
			t.Errorf("%v --help does not list CASSATA_CONFIG", args)
		}
	}
	_, out, _ := execute(t, "worker", "--help")
	for _, want := range []string{`(default "cassata")`, "(default 100)", "concurrent deliveries per worker process", "--redis-cluster[=true|false]", "(default 60s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("worker --help lacks %q:\n%s", want, out)
		}
	}
	code, out, _ := execute(t, "--help")
	for _, cmd := range []string{"dev", "server", "worker", "migrate", "apps", "import", "version", "healthcheck"} {
		if code != 0 || !regexp.MustCompile(`(?m)^  `+cmd+` `).MatchString(out) {
			t.Errorf("cassata --help does not list %s:\n%s", cmd, out)
		}
	}
}

// TestCLIVersion: `cassata version` prints "cassata <version> <commit>"
// (API.md §10); --verbose the build too.
func TestCLIVersion(t *testing.T) {
	v := version.Get()
	want := "cassata " + v.Version + " " + v.Commit
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := execute(t, args...)
		if code != 0 || !strings.HasPrefix(out, want) || len(strings.Fields(out)) != 3 {
			t.Errorf("%v: exit %d, %q; want %q", args, code, out, want)
		}
	}
	if code, out, _ := execute(t, "version", "--verbose"); code != 0 || out != v.String()+"\n" {
		t.Errorf("version --verbose: exit %d, %q; want %q", code, out, v.String())
	}
}

// TestHealthcheckRefused: nothing listening is exit 1 with a message.
func TestHealthcheckRefused(t *testing.T) {
	t.Setenv("CASSATA_LISTEN", "")
	code, _, stderr := execute(t, "healthcheck", "--listen", "127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "GET http://127.0.0.1:1/healthz") {
		t.Fatalf("exit %d, %s", code, stderr)
	}
}

// TestProcessLogsAndHealthcheck runs the binary: a server logs JSON lines
// only (go-redis's included), `cassata healthcheck` (and --ready) answers 0
// for it and 1 once it is gone; dev logs text by default.
func TestProcessLogsAndHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	bin := testbin.BuildT(t)
	rs := redistest.Start(t)
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "CASSATA_REDIS_URL=" + rs.URL(), "CASSATA_LOG_LEVEL=debug"}
	srv := startProc(t, "server", bin, []string{"server", "--listen", "127.0.0.1:0", "--redis-cluster=false", "--pprof"}, env)
	base := srv.baseURL(t)
	srv.waitReady(t)
	listen := strings.TrimPrefix(base, "http://")
	check := func(want int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"healthcheck"}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "CASSATA_LISTEN=" + listen}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("healthcheck %v: exit %d, want %d: %s", args, code, want, out)
		}
		return string(out)
	}
	check(0)
	check(0, "--ready")
	check(0, "--listen", listen, "--timeout", "1s")
	for _, line := range strings.Split(strings.TrimSpace(srv.Output()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("server wrote a line that is not JSON: %q", line)
		}
	}
	srv.Stop()
	if out := check(1); !strings.Contains(out, "GET http://"+listen+"/healthz") {
		t.Fatalf("healthcheck of a stopped server: %s", out)
	}

	dev := startProc(t, "dev", bin, []string{"dev", "--listen", "127.0.0.1:0"}, []string{"PATH=/usr/bin:/bin"})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(dev.Output(), "msg=listening") {
		if time.Now().After(deadline) || !dev.Running() {
			t.Fatalf("dev does not log text lines:\n%s", dev.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
