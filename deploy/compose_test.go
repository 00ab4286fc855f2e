package deploy

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// exampleEnv reads compose.env.example the way an operator uses it: the
// KEY=value lines, each <...> placeholder replaced by a random secret (hex,
// as the file asks). documented also has the optional, commented-out names.
func exampleEnv(t *testing.T) (env map[string]string, documented map[string]bool) {
	t.Helper()
	f, err := os.Open("compose.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env, documented = map[string]string{}, map[string]bool{}
	optional := regexp.MustCompile(`^#\s*([A-Z][A-Z0-9_]*)=`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := optional.FindStringSubmatch(line); m != nil {
			documented[m[1]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("compose.env.example: not KEY=value: %q", line)
		}
		if strings.HasPrefix(value, "<") && strings.HasSuffix(value, ">") {
			var b [24]byte
			if _, err := rand.Read(b[:]); err != nil {
				t.Fatal(err)
			}
			value = hex.EncodeToString(b[:])
		}
		env[key], documented[key] = value, true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env, documented
}

func loadComposeWith(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	})
}

// loadCompose loads compose.yaml with compose-go, as docker compose does,
// with the example's secrets filled in.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	env, _ := exampleEnv(t)
	p, err := loadComposeWith(t, env)
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

// cassataServices are the compose services that run the cassata image.
var cassataServices = []string{"migrate", "server", "worker"}

// composeUses: each cassata service's command and its health check, with
// the service's environment.
func composeUses(t *testing.T, p *types.Project) []use {
	t.Helper()
	var uses []use
	for _, name := range cassataServices {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("compose.yaml: no service %s", name)
		}
		env := cassataEnv(slices.Collect(maps.Keys(s.Environment)))
		uses = append(uses, use{where: "compose.yaml service " + name, args: s.Command, env: env})
		if hc := s.HealthCheck; hc != nil && !hc.Disable {
			if len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != "/cassata" {
				t.Fatalf("compose.yaml service %s: health check %q, want [CMD /cassata healthcheck ...]", name, hc.Test)
			}
			// It runs in the same container: it finds the port through CASSATA_LISTEN.
			uses = append(uses, use{where: "compose.yaml service " + name + " healthcheck", args: hc.Test[2:],
				env: slices.DeleteFunc(slices.Clone(env), func(v string) bool { return v != "CASSATA_LISTEN" })})
		}
	}
	return uses
}

// envValue is a service's environment variable (compose keeps them as
// pointers: nil for a name without a value).
func envValue(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	if !ok || v == nil {
		t.Fatalf("compose.yaml service %s: %s not set", s.Name, name)
	}
	return *v
}

func TestComposeFile(t *testing.T) {
	p := loadCompose(t)

	t.Run("services", func(t *testing.T) {
		var names []string
		for name := range p.Services {
			names = append(names, name)
		}
		slices.Sort(names)
		if want := []string{"mariadb", "migrate", "redis", "server", "worker"}; !slices.Equal(names, want) {
			t.Fatalf("services %v, want %v", names, want)
		}
		for name, want := range map[string][]string{"migrate": {"migrate"}, "server": {"server"}, "worker": {"worker"}} {
			if got := []string(p.Services[name].Command); !slices.Equal(got, want) {
				t.Errorf("service %s runs %q, want %q", name, got, want)
			}
		}
		w := p.Services["worker"]
		if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 2 {
			t.Errorf("worker: want deploy.replicas 2, got %+v", w.Deploy)
		}
		if got := p.Services["migrate"].Restart; got != "no" {
			t.Errorf("migrate: restart %q, want no (a one-shot step)", got)
		}
		for _, name := range []string{"redis", "mariadb", "server", "worker"} {
			if r := p.Services[name].Restart; r != "unless-stopped" && r != "always" {
				t.Errorf("service %s: restart %q, want unless-stopped", name, r)
			}
		}
	})

	t.Run("health checks", func(t *testing.T) {
		for name, s := range p.Services {
			hc := s.HealthCheck
			if name == "migrate" {
				if hc == nil || !hc.Disable {
					t.Errorf("migrate: want the image's health check disabled (it exits), got %+v", hc)
				}
				continue
			}
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
				t.Errorf("service %s: no health check (%+v)", name, hc)
				continue
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("service %s: health check without interval, timeout or retries: %+v", name, hc)
			}
		}
		for name, want := range map[string][]string{
			"server": {"CMD", "/cassata", "healthcheck", "--ready"},
			"worker": {"CMD", "/cassata", "healthcheck"},
		} {
			if got := []string(p.Services[name].HealthCheck.Test); !slices.Equal(got, want) {
				t.Errorf("service %s: health check %q, want %q", name, got, want)
			}
		}
	})

	t.Run("depends_on", func(t *testing.T) {
		want := map[string]map[string]string{
			"migrate": {"mariadb": types.ServiceConditionHealthy, "redis": types.ServiceConditionHealthy},
			"server":  {"migrate": types.ServiceConditionCompletedSuccessfully, "redis": types.ServiceConditionHealthy},
			"worker":  {"migrate": types.ServiceConditionCompletedSuccessfully, "redis": types.ServiceConditionHealthy},
		}
		for name, deps := range want {
			got := p.Services[name].DependsOn
			if len(got) != len(deps) {
				t.Errorf("service %s depends on %v, want %v", name, got, deps)
			}
			for dep, cond := range deps {
				if d, ok := got[dep]; !ok || d.Condition != cond || !d.Required {
					t.Errorf("service %s: depends_on %s = %+v, want condition %s", name, dep, d, cond)
				}
			}
		}
	})

	t.Run("volumes", func(t *testing.T) {
		for _, v := range []string{"redis-data", "mariadb-data"} {
			if _, ok := p.Volumes[v]; !ok {
				t.Errorf("no named volume %s", v)
			}
		}
		for name, target := range map[string]string{"redis": "/data", "mariadb": "/var/lib/mysql"} {
			s := p.Services[name]
			if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Type == types.VolumeTypeVolume && v.Source == name+"-data" && v.Target == target
			}) {
				t.Errorf("service %s: want the named volume %s-data at %s, got %+v", name, name, target, s.Volumes)
			}
		}
	})

	t.Run("redis settings", func(t *testing.T) {
		s := p.Services["redis"]
		if len(s.Configs) != 1 {
			t.Fatalf("redis: want deploy/redis.conf as its one config, got %+v", s.Configs)
		}
		c := s.Configs[0]
		if !slices.Contains(s.Command, c.Target) || s.Command[0] != "redis-server" {
			t.Errorf("redis: command %q does not read its config %s", s.Command, c.Target)
		}
		file := p.Configs[c.Source].File
		if filepath.Base(file) != "redis.conf" {
			t.Fatalf("redis: config %s is %q, want deploy/redis.conf", c.Source, file)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		conf := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(f[0], "#") {
				conf[f[0]] = f[1]
			}
		}
		for k, v := range map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "everysec"} {
			if conf[k] != v {
				t.Errorf("redis.conf: %s %q, want %s", k, conf[k], v)
			}
		}
	})

	t.Run("cassata settings", func(t *testing.T) {
		for _, name := range cassataServices {
			s := p.Services[name]
			if s.Image == "" || s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("service %s: want an image built from deploy/Dockerfile, got image %q build %+v", name, s.Image, s.Build)
			} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("service %s: build context %s: %v", name, s.Build.Context, err)
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("service %s: want read_only and cap_drop ALL", name)
			}
			// The addresses name the services that hold them.
			redis, err := url.Parse(envValue(t, s, "CASSATA_REDIS_URL"))
			if err != nil || redis.Hostname() != "redis" {
				t.Errorf("service %s: CASSATA_REDIS_URL is not the redis service: %v", name, err)
			}
			dsn, err := url.Parse(envValue(t, s, "CASSATA_ARCHIVE_DSN"))
			if err != nil {
				t.Fatalf("service %s: CASSATA_ARCHIVE_DSN: %v", name, err)
			}
			db := p.Services["mariadb"]
			password, _ := dsn.User.Password()
			if dsn.Scheme != "mysql" || dsn.Hostname() != "mariadb" || dsn.Port() != "3306" ||
				dsn.User.Username() != envValue(t, db, "MARIADB_USER") || password != envValue(t, db, "MARIADB_PASSWORD") ||
				strings.TrimPrefix(dsn.Path, "/") != envValue(t, db, "MARIADB_DATABASE") {
				t.Errorf("service %s: CASSATA_ARCHIVE_DSN %s does not match the mariadb service's database, user and password", name, dsn.Redacted())
			}
		}
		for _, name := range []string{"server", "worker"} {
			s := p.Services[name]
			port := defaultPort(t, name)
			if got := portOf(t, envValue(t, s, "CASSATA_LISTEN")); got != port {
				t.Errorf("service %s: CASSATA_LISTEN port %s, want the default %s", name, got, port)
			}
		}
		server := p.Services["server"]
		if len(server.Ports) != 1 || server.Ports[0].Target != parsePort(t, defaultPort(t, "server")) {
			t.Errorf("server: want port %s published, got %+v", defaultPort(t, "server"), server.Ports)
		}
		for _, v := range []string{"CASSATA_ADMIN_PASSWORD", "CASSATA_ADMIN_TOKEN"} {
			if envValue(t, server, v) == "" {
				t.Errorf("server: %s is empty", v)
			}
		}
		if envValue(t, server, "CASSATA_AUTH") != "on" {
			t.Error("server: CASSATA_AUTH is not on")
		}
	})

	t.Run("secrets come from deploy/.env", func(t *testing.T) {
		data, err := os.ReadFile("compose.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, documented := exampleEnv(t)
		for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(data), -1) {
			if !documented[m[1]] {
				t.Errorf("compose.yaml uses ${%s}, which compose.env.example does not mention", m[1])
			}
		}
		// Without them compose refuses to start, naming what is missing.
		if _, err := loadComposeWith(t, map[string]string{}); err == nil || !strings.Contains(err.Error(), "CASSATA_DB_PASSWORD") {
			t.Errorf("loading without deploy/.env: %v, want an error naming CASSATA_DB_PASSWORD", err)
		}
	})
}

func parsePort(t *testing.T, s string) uint32 {
	t.Helper()
	p, err := net.LookupPort("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}
