// Package deploy holds no code: its tests check the deployment files in this
// directory (compose.yaml, kubernetes/, Dockerfile) against each other and
// against the cassata binary, without Docker or a cluster. The systemd units
// and cassata.env.example are started for real by cmd/cassata's
// TestShippedConfigurationsStart.
package deploy

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/version"
)

// use is one command line that a deployment file runs: the cassata
// subcommand with its flags, and the CASSATA_* variables in its environment.
type use struct {
	where string   // the file and service or container, for messages
	args  []string // after the binary: ["worker"], ["healthcheck", "--ready"]
	env   []string // CASSATA_* names
}

// command is the subcommand path of args (the words before the first flag).
func (u use) command() []string {
	i := slices.IndexFunc(u.args, func(a string) bool { return strings.HasPrefix(a, "-") })
	if i < 0 {
		return u.args
	}
	return u.args[:i]
}

// flags are the names of the flags in args, without dashes or values.
func (u use) flags() []string {
	var names []string
	for _, a := range u.args {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			names = append(names, name)
		}
	}
	return names
}

// cassataEnv keeps the CASSATA_* names of env.
func cassataEnv(env []string) []string {
	var names []string
	for _, k := range env {
		if strings.HasPrefix(k, "CASSATA_") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// envOnly are settings that have no flag: the help of today lists flags
// (each with its variable), so these are looked for in the binary itself
// when its help leaves them out.
var envOnly = map[string]bool{"CASSATA_ADMIN_PASSWORD": true, "CASSATA_ADMIN_TOKEN": true}

var (
	// A flag at the start of a help line: "  -listen value" (package flag),
	// "  -h, --help" or "      --listen string" (cobra).
	helpFlagRE = regexp.MustCompile(`^\s*(?:-[a-zA-Z], )?--?([a-z][a-z0-9-]*)`)
	helpEnvRE  = regexp.MustCompile(`CASSATA_[A-Z0-9_]+`)
)

// help is what `cassata <command> --help` says the command takes.
type help struct {
	flags, env map[string]bool
	text       string
}

func readHelp(t *testing.T, bin string, command []string) (help, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, append(slices.Clone(command), "--help")...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no CASSATA_* of the test's environment
	out, err := cmd.CombinedOutput()
	text := string(out)
	if strings.Contains(strings.ToLower(text), "unknown command") {
		return help{text: text}, false
	}
	if err != nil {
		t.Fatalf("cassata %s --help: %v\n%s", strings.Join(command, " "), err, text)
	}
	h := help{flags: map[string]bool{}, env: map[string]bool{}, text: text}
	for _, line := range strings.Split(text, "\n") {
		if m := helpFlagRE.FindStringSubmatch(line); m != nil {
			h.flags[m[1]] = true
		}
	}
	for _, v := range helpEnvRE.FindAllString(text, -1) {
		h.env[v] = true
	}
	return h, true
}

// TestBinaryKnowsWhatDeployUses builds cassata and checks that every
// command, flag and CASSATA_* variable that compose.yaml, the Kubernetes
// manifests and the Dockerfile use is one that `cassata <command> --help`
// lists for that command: a renamed flag or variable fails here, not in an
// operator's cluster.
func TestBinaryKnowsWhatDeployUses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	uses := append(composeUses(t, loadCompose(t)), kubeUses(t, loadKube(t))...)
	uses = append(uses, dockerfileUses(t)...)
	bin := testbin.BuildT(t)
	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	byCommand := map[string][]use{}
	for _, u := range uses {
		if len(u.command()) == 0 {
			t.Fatalf("%s: runs cassata without a command: %q", u.where, u.args)
		}
		key := strings.Join(u.command(), " ")
		byCommand[key] = append(byCommand[key], u)
	}
	for _, want := range []string{"server", "worker", "migrate", "healthcheck"} {
		if len(byCommand[want]) == 0 {
			t.Errorf("no deployment file runs cassata %s", want)
		}
	}
	for key, us := range byCommand {
		t.Run(key, func(t *testing.T) {
			h, ok := readHelp(t, bin, us[0].command())
			if !ok {
				if key == "healthcheck" {
					// It lands with the CLI rewrite; until then the images'
					// health checks have nothing to run.
					t.Skipf("cassata %s does not exist yet:\n%s", key, h.text)
				}
				t.Fatalf("cassata %s: unknown command:\n%s", key, h.text)
			}
			for _, u := range us {
				for _, f := range u.flags() {
					if !h.flags[f] {
						t.Errorf("%s: cassata %s has no flag --%s:\n%s", u.where, key, f, h.text)
					}
				}
				for _, v := range u.env {
					switch {
					case h.env[v]:
					case envOnly[v] && bytes.Contains(binary, []byte(v)):
					default:
						t.Errorf("%s: cassata %s --help does not list %s:\n%s", u.where, key, v, h.text)
					}
				}
			}
		})
	}
}

// portOf is the port of a listen address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// defaultPort is the port each long-running command listens on by default.
func defaultPort(t *testing.T, command string) string {
	t.Helper()
	switch command {
	case "server":
		return portOf(t, config.DefaultListen)
	case "worker":
		return portOf(t, config.DefaultWorkerListen)
	}
	t.Fatalf("no default port for %s", command)
	return ""
}

// dockerfile is deploy/Dockerfile's instructions, one per line with its
// continuation lines joined.
func dockerfile(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	return lines
}

// instruction returns the arguments of the last instruction named name in
// the final stage (after the last FROM), or "" without one.
func instruction(lines []string, name string) string {
	last := ""
	for _, l := range lines {
		word, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			last = ""
		case name:
			last = strings.TrimSpace(rest)
		}
	}
	return last
}

// execForm decodes an exec-form instruction argument (a JSON array).
func execForm(t *testing.T, what, s string) []string {
	t.Helper()
	var words []string
	if err := json.Unmarshal([]byte(s), &words); err != nil {
		t.Fatalf("Dockerfile %s %s: want the exec form, a JSON array: %v", what, s, err)
	}
	return words
}

// dockerfileUses is what the image runs: its default command and its
// HEALTHCHECK (with no CASSATA_* of its own).
func dockerfileUses(t *testing.T) []use {
	lines := dockerfile(t)
	entry := execForm(t, "ENTRYPOINT", instruction(lines, "ENTRYPOINT"))
	cmd := execForm(t, "CMD", instruction(lines, "CMD"))
	hc := instruction(lines, "HEALTHCHECK")
	_, hcCmd, ok := strings.Cut(hc, "CMD ")
	if !ok {
		t.Fatalf("Dockerfile HEALTHCHECK %q: want CMD [...]", hc)
	}
	check := execForm(t, "HEALTHCHECK CMD", hcCmd)
	if len(entry) != 1 || len(check) == 0 || check[0] != entry[0] {
		t.Fatalf("Dockerfile: HEALTHCHECK runs %q, want the binary of ENTRYPOINT %q", check, entry)
	}
	return []use{
		{where: "Dockerfile CMD", args: cmd},
		{where: "Dockerfile HEALTHCHECK", args: check[1:]},
	}
}

// TestDockerfile: distroless, a numeric non-root user (Kubernetes'
// runAsNonRoot cannot verify a name), the version stamped in, a
// HEALTHCHECK, the server's and the worker's default ports exposed.
func TestDockerfile(t *testing.T) {
	lines := dockerfile(t)
	var froms []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "FROM "); ok {
			froms = append(froms, rest)
		}
	}
	if len(froms) == 0 || !strings.HasPrefix(froms[len(froms)-1], "gcr.io/distroless/") || !strings.Contains(froms[len(froms)-1], "nonroot") {
		t.Errorf("final stage FROM %v: want a distroless nonroot image", froms)
	}
	user := instruction(lines, "USER")
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root uid", user)
	}
	if hc := instruction(lines, "HEALTHCHECK"); hc == "" {
		t.Error("no HEALTHCHECK")
	}
	exposed := strings.Fields(instruction(lines, "EXPOSE"))
	for _, cmd := range []string{"server", "worker"} {
		if p := defaultPort(t, cmd); !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s's default port %s", exposed, cmd, p)
		}
	}
	all := strings.Join(lines, "\n")
	pkg := reflect.TypeFor[version.Info]().PkgPath()
	for _, v := range []string{"VERSION", "COMMIT", "DATE"} {
		if !slices.Contains(lines, "ARG "+v) && !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ARG "+v+"=") }) {
			t.Errorf("no ARG %s", v)
		}
	}
	// The variables exist (this compiles) and the flags name them.
	_, _, _ = version.Version, version.Commit, version.Date
	for _, x := range []string{pkg + ".Version=${VERSION}", pkg + ".Commit=${COMMIT}", pkg + ".Date=${DATE}"} {
		if !strings.Contains(all, "-X "+x) {
			t.Errorf("the build does not pass -X %s", x)
		}
	}
}

// TestMakefileStampsVersion: make build passes the same -X flags.
func TestMakefileStampsVersion(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	mk := string(data)
	pkg := reflect.TypeFor[version.Info]().PkgPath()
	if !strings.Contains(mk, "VERSION_PKG  := "+pkg) {
		t.Errorf("Makefile: VERSION_PKG is not %s", pkg)
	}
	for _, x := range []string{"-X $(VERSION_PKG).Version=$(VERSION)", "-X $(VERSION_PKG).Commit=$(COMMIT)", "-X $(VERSION_PKG).Date=$(DATE)"} {
		if !strings.Contains(mk, x) {
			t.Errorf("Makefile: LDFLAGS lack %s", x)
		}
	}
	if !regexp.MustCompile(`(?m)^\t\$\(GO\) build -ldflags "\$\(LDFLAGS\)"`).MatchString(mk) {
		t.Error("Makefile: build does not pass $(LDFLAGS)")
	}
	for _, arg := range []string{"VERSION", "COMMIT", "DATE"} {
		if !strings.Contains(mk, "--build-arg "+arg+"=$("+arg+")") {
			t.Errorf("Makefile: image does not pass --build-arg %s", arg)
		}
	}
}

// TestDockerignore: the build context leaves out the repository's history,
// build output and local secrets, and keeps what the build needs.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns[line] = true
		}
	}
	for _, want := range []string{".git", "bin/", "**/*.test", "**/testdata/", "**/.env", "wt-*/"} {
		if !patterns[want] {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	// Patterns that would take away what go build needs.
	for p := range patterns {
		for _, need := range []string{"go.mod", "go.sum", "cmd/cassata/main.go", "luascripts/claim.lua",
			"web/static/cassata.css", "store/archive/migrations/mysql/0001_init.sql", "api/errors.go"} {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), need); ok || strings.HasPrefix(need, strings.TrimSuffix(p, "/")+"/") && !strings.HasPrefix(p, "!") {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, need)
			}
		}
	}
}
