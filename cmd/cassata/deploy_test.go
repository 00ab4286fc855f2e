package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/testbin"
)

// TestShippedConfigurationsStart starts the built binary the ways an
// operator would from what the repository ships, against a real
// redis-server, until /readyz answers 200:
//   - deploy: deploy/cassata.env.example and the systemd units, exactly;
//   - original config: the original Cassata's service and worker config
//     files (internal/config/testdata/), unchanged but for the database's address.
func TestShippedConfigurationsStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts processes")
	}
	// Skip (or fail, see redistest) before the build without redis-server.
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("redis-server not found and %s=1: %v", redistest.RequireEnv, err)
		}
		t.Skip("redis-server not installed")
	}
	bin := testbin.BuildT(t)
	t.Run("deploy", func(t *testing.T) {
		t.Parallel()
		testDeployFiles(t, bin)
	})
	t.Run("original config", func(t *testing.T) {
		t.Parallel()
		testOriginalConfigStarts(t, bin)
	})
	t.Run("dev stays on loopback", func(t *testing.T) {
		t.Parallel()
		testDevLoopback(t, bin)
	})
}

// testDevLoopback: dev with a port alone (a YAML port, :port) listens on
// loopback only; an address naming a non-loopback host is taken, with a
// loud warning.
func testDevLoopback(t *testing.T, bin string) {
	// dev logs text by default; the test reads the JSON lines.
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "CASSATA_LOG_FORMAT=json"}
	portOnly := filepath.Join(t.TempDir(), "cassata.yaml")
	if err := os.WriteFile(portOnly, []byte("port: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		loopback bool
	}{
		{"a YAML port", []string{"dev", "--config", portOnly}, true},
		{"a listen without host", []string{"dev", "--listen", ":0"}, true},
		{"an explicit wildcard host", []string{"dev", "--listen", "0.0.0.0:0"}, false},
	}
	for _, tt := range tests {
		p := startProc(t, "dev, "+tt.name, bin, tt.args, env)
		var addr string
		p.waitFor(t, 30*time.Second, func() string {
			if addr = p.logged("listening", "addr"); addr == "" {
				return "not listening yet"
			}
			return ""
		})
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		ip := net.ParseIP(host)
		p.waitReady(t) // the warning comes before the server serves
		warned := strings.Contains(p.Output(), "DEV MODE LISTENS BEYOND LOOPBACK")
		if tt.loopback && (ip == nil || !ip.IsLoopback() || warned) {
			t.Fatalf("%s: dev listens on %s (warned %v), want loopback", tt.name, addr, warned)
		}
		if !tt.loopback && (ip == nil || ip.IsLoopback() || !warned) {
			t.Fatalf("%s: dev listens on %s (warned %v), want every interface with the warning", tt.name, addr, warned)
		}
	}
}

// systemdUnit is what the test reads of a unit's [Service] section.
type systemdUnit struct {
	path           string
	execStart      []string
	environment    []string // KEY=value, from Environment=
	envFiles       []string
	stateDirs      []string
	readWritePaths []string
	protectSystem  string
}

// readUnit reads the [Service] settings of a systemd unit file that the
// test (and Cassata's units) use.
func readUnit(t *testing.T, file string) systemdUnit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := systemdUnit{path: file}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", file, line)
		}
		if section != "[Service]" {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "ExecStart":
			u.execStart = splitQuoted(t, strings.TrimLeft(value, "-@:+!"))
		case "Environment":
			u.environment = append(u.environment, splitQuoted(t, value)...)
		case "EnvironmentFile":
			u.envFiles = append(u.envFiles, strings.TrimPrefix(value, "-"))
		case "StateDirectory":
			u.stateDirs = append(u.stateDirs, strings.Fields(value)...)
		case "ReadWritePaths":
			u.readWritePaths = append(u.readWritePaths, strings.Fields(value)...)
		case "ProtectSystem":
			u.protectSystem = value
		case "DynamicUser":
			if value == "yes" || value == "true" {
				u.protectSystem = "strict" // DynamicUser implies ProtectSystem=strict
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(u.execStart) == 0 {
		t.Fatalf("%s: no ExecStart=", file)
	}
	return u
}

// splitQuoted splits a systemd command line or Environment= value into
// words, honouring double and single quotes.
func splitQuoted(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// readEnvFile reads the KEY=value lines of an EnvironmentFile; comments and
// blank lines are skipped, surrounding quotes removed.
func readEnvFile(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			t.Fatalf("%s:%d: not KEY=value: %q", file, n+1, line)
		}
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		env = append(env, key+"="+value)
	}
	return env
}

func randomSecret(t *testing.T) string {
	t.Helper()
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// testDeployFiles starts cassata-server and cassata-worker as their units
// say: ExecStart's arguments, Environment=, the EnvironmentFile (the
// example, copied as the README says, with what an operator fills in: their
// Redis, the placeholders) and StateDirectory (a temporary directory
// standing in for /var/lib/<name>). The one other change: each listens on a
// free loopback port instead of :8085 and :8086.
func testDeployFiles(t *testing.T, bin string) {
	redis := redistest.Start(t)
	stateDir := t.TempDir()
	adminPassword := randomSecret(t)
	const envFileTarget = "/etc/cassata/cassata.env"
	example := readEnvFile(t, filepath.Join("..", "..", "deploy", "cassata.env.example"))

	procs := map[string]*cassataProc{}
	for _, name := range []string{"server", "worker"} {
		u := readUnit(t, filepath.Join("..", "..", "deploy", "systemd", "cassata-"+name+".service"))
		if base := path.Base(u.execStart[0]); base != "cassata" {
			t.Fatalf("%s: ExecStart runs %s, not cassata", u.path, u.execStart[0])
		}
		if len(u.stateDirs) != 1 {
			t.Fatalf("%s: want one StateDirectory= (the SQLite archive's home), got %v", u.path, u.stateDirs)
		}
		stateTarget := "/var/lib/" + u.stateDirs[0]
		for _, a := range u.execStart[1:] {
			if strings.HasPrefix(a, "--listen") {
				t.Fatalf("%s: ExecStart sets --listen: the test could not give it a free port", u.path)
			}
		}

		env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "STATE_DIRECTORY=" + stateDir}
		var files []string
		for _, ef := range u.envFiles {
			if ef != envFileTarget {
				t.Fatalf("%s: EnvironmentFile=%s; the README installs the example as %s", u.path, ef, envFileTarget)
			}
			files = append(files, example...)
		}
		for _, kv := range append(files, u.environment...) {
			key, value, _ := strings.Cut(kv, "=")
			switch {
			case key == "CASSATA_REDIS_URL":
				value = redis.URL() // the operator's own Redis
			case strings.HasPrefix(value, "<") && strings.HasSuffix(value, ">"):
				if key != "CASSATA_ADMIN_PASSWORD" {
					t.Fatalf("%s=%s: a placeholder this test does not know how to fill; teach it", key, value)
				}
				value = adminPassword
			}
			if key == "CASSATA_ARCHIVE_DSN" && strings.HasPrefix(value, "sqlite://") {
				file := strings.TrimPrefix(value, "sqlite://")
				if u.protectSystem == "strict" && !underAny(file, append([]string{stateTarget}, u.readWritePaths...)) {
					t.Fatalf("%s: the archive %s is read-only under the unit's ProtectSystem=strict (StateDirectory=%s, ReadWritePaths=%v)",
						u.path, file, u.stateDirs[0], u.readWritePaths)
				}
			}
			env = append(env, key+"="+strings.ReplaceAll(value, stateTarget, stateDir))
		}
		env = append(env, "CASSATA_LISTEN=127.0.0.1:0")
		procs[name] = startProc(t, "cassata-"+name+".service", bin, u.execStart[1:], env)
	}
	for _, name := range []string{"server", "worker"} {
		procs[name].waitReady(t)
	}
	server := procs["server"]
	code, body, _ := server.get(t, "/admin/login")
	if code != http.StatusOK || !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET /admin/login: %d, want the login form:\n%s", code, body)
	}
	code, _, hdr := server.get(t, "/admin/")
	if code/100 != 3 || !strings.Contains(hdr.Get("Location"), "/admin/login") {
		t.Fatalf("GET /admin/ without a session: %d to %q, want a redirect to the login form", code, hdr.Get("Location"))
	}
	if _, err := os.Stat(filepath.Join(stateDir, "archive.db")); err != nil {
		t.Fatalf("the SQLite archive is not in the state directory: %v", err)
	}
}

// underAny reports whether file lies in one of dirs.
func underAny(file string, dirs []string) bool {
	file = filepath.Clean(file)
	for _, d := range dirs {
		if rel, err := filepath.Rel(filepath.Clean(d), file); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return true
		}
	}
	return false
}

// testOriginalConfigStarts starts `cassata service start` and `cassata
// worker start` (the original's commands) on the original's service and
// worker config files, whose database section points at a real MariaDB
// with the files' user and password (URL syntax in it), and whose service
// port is a free one.
func testOriginalConfigStarts(t *testing.T, bin string) {
	redis := redistest.Start(t)
	db := mysqltest.Start(t)
	const user, password = "cassata_rw", "s3cr3t:p@ss/w?rd#1"
	for _, stmt := range []string{
		"CREATE DATABASE cassata CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'",
		"CREATE USER '" + user + "'@'localhost' IDENTIFIED BY '" + password + "'",
		"GRANT ALL ON cassata.* TO '" + user + "'@'%'",
		"GRANT ALL ON cassata.* TO '" + user + "'@'localhost'",
	} {
		if _, err := db.Admin().Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	render := func(name string, replace ...[2]string) string {
		data, err := os.ReadFile(filepath.Join("..", "..", "internal", "config", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, r := range append(replace, [2]string{"db.internal:3306", db.Addr()}) {
			if !strings.Contains(s, r[0]) {
				t.Fatalf("internal/config/testdata/%s has no %q to point at the test's servers", name, r[0])
			}
			s = strings.ReplaceAll(s, r[0], r[1])
		}
		out := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(out, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return out
	}
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "CASSATA_REDIS_URL=" + redis.URL()}
	server := startProc(t, "service", bin, []string{"service", "start", "--config", render("original-service.yaml", [2]string{"port: 8088", "port: " + strconv.Itoa(port)})}, env)
	// The original worker had no HTTP port; Cassata's needs a free one here.
	worker := startProc(t, "worker", bin, []string{"worker", "start", "--config", render("original-worker.yaml")},
		append(env, "CASSATA_LISTEN=127.0.0.1:0"))
	server.waitReady(t)
	worker.waitReady(t)
	if got, want := server.baseURL(t), fmt.Sprintf("http://127.0.0.1:%d", port); got != want {
		t.Fatalf("the service listens at %s, want %s (its config file's port)", got, want)
	}
	// The worker migrated the archive through the database section's DSN.
	worker.waitFor(t, 30*time.Second, func() string {
		if !strings.Contains(worker.Output(), "archive ready") {
			return "the worker has not migrated the archive yet"
		}
		return ""
	})
	var tables int
	if err := db.Admin().QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'cassata'").Scan(&tables); err != nil || tables == 0 {
		t.Fatalf("archive tables in the original's database: %d, %v", tables, err)
	}
	for _, p := range []*cassataProc{server, worker} {
		if strings.Contains(p.Output(), "s3cr3t") {
			t.Fatalf("%s logged the database password:\n%s", p.name, p.Output())
		}
	}
}
