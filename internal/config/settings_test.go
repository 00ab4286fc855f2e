package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestConfigReferenceInREADME: the README's configuration reference is
// the one Settings generate.
func TestConfigReferenceInREADME(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceReference(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if want != string(data) {
		t.Fatal("README.md's configuration reference differs from config.Settings: run go generate ./internal/config and commit README.md")
	}
	for _, s := range Settings {
		if !strings.Contains(string(data), "`"+s.Env+"`") {
			t.Errorf("the README does not list %s", s.Env)
		}
	}
}

// TestSettingsComplete: every field of Config is one setting, and every
// setting has its variable, YAML key, description, default and commands;
// names are unique; the original's names are the ones the file reader knows.
func TestSettingsComplete(t *testing.T) {
	var c Config
	fields := map[uintptr]string{}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() {
			fields[v.Field(i).Addr().Pointer()] = f.Name
		}
	}
	seen := map[string]bool{}
	unique := func(kind, name string) {
		if name == "" {
			return
		}
		if seen[kind+name] {
			t.Errorf("%s %s given twice", kind, name)
		}
		seen[kind+name] = true
	}
	aliases := map[string]bool{}
	for _, s := range Settings {
		p := reflect.ValueOf(s.field(&c)).Pointer()
		name, ok := fields[p]
		if !ok {
			t.Errorf("%s: points at no field of Config, or one claimed twice", s.Env)
		}
		delete(fields, p)
		if !strings.HasPrefix(s.Env, "CASSATA_") || s.YAML == "" || s.Usage == "" || len(s.Commands) == 0 {
			t.Errorf("%s (%s): want a CASSATA_ variable, a YAML key, a description and commands: %+v", s.Env, name, s)
		}
		if s.DefaultText() == "" {
			t.Errorf("%s: no default", s.Env)
		}
		for _, m := range s.Commands {
			if !slices.Contains(Commands, m) {
				t.Errorf("%s: unknown command %q", s.Env, m)
			}
		}
		unique("flag", s.Flag)
		unique("env", s.Env)
		unique("yaml", s.YAML)
		for _, a := range s.Aliases {
			last := a[strings.LastIndex(a, ".")+1:]
			aliases[last] = true
			if _, ok := originalKeys[last]; !ok && !strings.HasPrefix(a, "database.") && !strings.HasPrefix(a, "server.") {
				t.Errorf("%s: alias %s is not a name the file reader knows", s.Env, a)
			}
		}
	}
	for _, name := range fields {
		t.Errorf("Config.%s has no setting", name)
	}
	for key := range originalKeys {
		if !aliases[key] && key != "timeToWaitBeforeCleanup" && key != "createFailedRequestLog" {
			t.Errorf("the original's %s is not listed as any setting's alias", key)
		}
	}
}

// TestEverySettingsPrecedence: for every setting, a flag wins over the
// environment, which wins over the YAML file, which wins over the default.
func TestEverySettingsPrecedence(t *testing.T) {
	samples := map[string][3]string{ // YAML, env, flag
		"CASSATA_REDIS_URL":      {"redis://yaml:6379/0", "redis://env:6379/0", "redis://flag:6379/0"},
		"CASSATA_ARCHIVE_DSN":    {"sqlite:///yaml.db", "sqlite:///env.db", "sqlite:///flag.db"},
		"CASSATA_LISTEN":         {"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"},
		"CASSATA_AUTH":           {"off", "on", "off"},
		"CASSATA_BLOCK_PRIVATE":  {"off", "on", "off"},
		"CASSATA_ALLOW_CIDRS":    {"10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"},
		"CASSATA_LOG_LEVEL":      {"debug", "warn", "error"},
		"CASSATA_LOG_FORMAT":     {"text", "json", "text"},
		"CASSATA_ADMIN_TOKEN":    {"yaml-token", "env-token", ""},
		"CASSATA_ADMIN_PASSWORD": {"yaml-password", "env-password", ""},
	}
	for _, s := range Settings {
		vals, ok := samples[s.Env]
		if !ok {
			switch s.Kind() {
			case "int":
				vals = [3]string{"3", "4", "5"}
			case "duration":
				vals = [3]string{"11s", "12s", "13s"}
			case "bool":
				vals = [3]string{"true", "false", "true"}
			default:
				vals = [3]string{"yaml", "env", "flag"}
			}
		}
		mode := s.Commands[0]
		t.Run(s.Env, func(t *testing.T) {
			for _, o := range Settings {
				t.Setenv(o.Env, "")
			}
			t.Setenv(ConfigEnv, "")
			if s.Env != "CASSATA_REDIS_URL" {
				t.Setenv("CASSATA_REDIS_URL", "redis://base:6379/0")
			}
			yamlValue := vals[0]
			if s.Kind() == "string" || s.Kind() == "duration" {
				yamlValue = `"` + yamlValue + `"`
			}
			file := writeYAML(t, s.YAML+": "+yamlValue+"\n")
			get := func(args ...string) string {
				t.Helper()
				c, _, err := Load(mode, append([]string{"--config", file}, args...))
				if err != nil {
					t.Fatalf("load %v: %v", args, err)
				}
				return format(reflect.ValueOf(s.field(&c)).Elem().Interface())
			}
			norm := func(v string) string {
				if d, err := time.ParseDuration(v); err == nil && s.Kind() == "duration" {
					return formatDuration(d)
				}
				return v
			}
			if got := get(); got != norm(vals[0]) {
				t.Errorf("YAML: %q, want %q", got, vals[0])
			}
			t.Setenv(s.Env, vals[1])
			if got := get(); got != norm(vals[1]) {
				t.Errorf("env over YAML: %q, want %q", got, vals[1])
			}
			if s.Flag == "" {
				return
			}
			if got := get("--" + s.Flag + "=" + vals[2]); got != norm(vals[2]) {
				t.Errorf("flag over env: %q, want %q", got, vals[2])
			}
		})
	}
}

// TestFlagsPerCommand: each command has the flags of its settings only,
// typed, with their defaults; a switch needs no value.
func TestFlagsPerCommand(t *testing.T) {
	for _, mode := range Commands {
		fs := pflag.NewFlagSet(mode, pflag.ContinueOnError)
		BindFlags(fs, mode)
		for _, s := range Settings {
			f := fs.Lookup(s.Flag)
			if s.Flag == "" {
				continue
			}
			if s.For(mode) != (f != nil) {
				t.Errorf("%s --%s: has the flag %v, want %v", mode, s.Flag, f != nil, s.For(mode))
				continue
			}
			if f == nil {
				continue
			}
			kind := map[string]string{"string": "string", "int": "int", "bool": "bool", "duration": "duration"}[s.Kind()]
			if f.Value.Type() != kind {
				t.Errorf("%s --%s: type %s, want %s", mode, s.Flag, f.Value.Type(), kind)
			}
			if s.Kind() == "bool" && f.NoOptDefVal != "true" {
				t.Errorf("%s --%s: not a switch", mode, s.Flag)
			}
			if f.Usage == "" {
				t.Errorf("%s --%s: no description", mode, s.Flag)
			}
		}
	}
	t.Setenv("CASSATA_REDIS_URL", "redis://x:6379/0")
	c, _, err := Load(ModeWorker, []string{"--redis-cluster", "--pprof", "--concurrency", "7", "--poll-interval", "250ms"})
	if err != nil || !c.RedisCluster || !c.Pprof || c.WorkerConcurrency != 7 || c.PollInterval != 250*time.Millisecond {
		t.Fatalf("typed flags: %v %+v", err, c)
	}
	for _, args := range [][]string{{"--concurrency", "lots"}, {"--poll-interval", "5"}, {"--pprof=maybe"}, {"--auth", "on"}} {
		if _, _, err := Load(ModeWorker, args); err == nil {
			t.Errorf("worker %v: accepted", args)
		}
	}
}

func TestDefaultText(t *testing.T) {
	for env, want := range map[string]string{
		"CASSATA_LISTEN":     ":8085 (dev: 127.0.0.1:8085; worker: :8086)",
		"CASSATA_AUTH":       "on (dev: off)",
		"CASSATA_RETENTION":  "24h",
		"CASSATA_SHARDS":     "16, or the namespace's recorded count",
		"CASSATA_LOG_FORMAT": "json (dev: text)",
	} {
		for _, s := range Settings {
			if s.Env == env && s.DefaultText() != want {
				t.Errorf("%s: default %q, want %q", env, s.DefaultText(), want)
			}
		}
	}
}

// TestHealthcheckListen: healthcheck reads the listen address as a server
// does (flag, CASSATA_LISTEN, YAML listen or the original's port) and needs
// no Redis URL.
func TestHealthcheckListen(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "")
	t.Setenv("CASSATA_LISTEN", "")
	for _, tt := range []struct {
		yaml, env string
		args      []string
		want      string
	}{
		{"", "", nil, ":8085"},
		{"port: 8088\n", "", nil, ":8088"},
		{"listen: 127.0.0.1:9000\n", "", nil, "127.0.0.1:9000"},
		{"port: 8088\n", ":8086", nil, ":8086"},
		{"", ":8086", []string{"--listen", "8087"}, ":8087"},
	} {
		t.Setenv("CASSATA_LISTEN", tt.env)
		args := tt.args
		if tt.yaml != "" {
			args = append(args, "--config", writeYAML(t, tt.yaml))
		}
		c, _, err := Load(ModeHealthcheck, args)
		if err != nil || c.Listen != tt.want {
			t.Errorf("%q %q %v: listen %q, %v; want %q", tt.yaml, tt.env, tt.args, c.Listen, err, tt.want)
		}
	}
}
