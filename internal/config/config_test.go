package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cassata/cassata/store/redisstore"
)

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cassata.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	yaml := writeYAML(t, "redis_url: redis://yaml:6379/0\nnamespace: fromyaml\nworker_concurrency: 7\nlisten: ':9000'\n")

	t.Run("defaults", func(t *testing.T) {
		t.Setenv("CASSATA_REDIS_URL", "redis://env:6379/0")
		c, _, err := Load("server", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != ":8085" || c.Auth != "on" || c.BlockPrivate != "on" || c.Namespace != "cassata" ||
			c.WorkerConcurrency != 100 || c.Retention != 24*time.Hour {
			t.Fatalf("defaults: %+v", c)
		}
	})
	t.Run("dev defaults", func(t *testing.T) {
		c, _, err := Load("dev", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != "127.0.0.1:8085" || c.Auth != "off" || c.BlockPrivate != "off" {
			t.Fatalf("dev defaults: %+v", c)
		}
	})
	t.Run("worker listens on 8086", func(t *testing.T) {
		t.Setenv("CASSATA_REDIS_URL", "redis://env:6379/0")
		c, _, err := Load("worker", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != ":8086" {
			t.Fatalf("listen = %q", c.Listen)
		}
	})
	t.Run("yaml over defaults", func(t *testing.T) {
		c, _, err := Load("server", []string{"--config", yaml})
		if err != nil {
			t.Fatal(err)
		}
		if c.RedisURL != "redis://yaml:6379/0" || c.Namespace != "fromyaml" || c.WorkerConcurrency != 7 || c.Listen != ":9000" {
			t.Fatalf("yaml: %+v", c)
		}
	})
	t.Run("env over yaml", func(t *testing.T) {
		t.Setenv("CASSATA_CONFIG", yaml)
		t.Setenv("CASSATA_NAMESPACE", "fromenv")
		t.Setenv("CASSATA_WORKER_CONCURRENCY", "9")
		c, _, err := Load("server", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Namespace != "fromenv" || c.WorkerConcurrency != 9 || c.RedisURL != "redis://yaml:6379/0" {
			t.Fatalf("env: %+v", c)
		}
	})
	t.Run("flags over env", func(t *testing.T) {
		t.Setenv("CASSATA_NAMESPACE", "fromenv")
		c, _, err := Load("server", []string{"--config", yaml, "--namespace", "fromflag", "--listen", "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Namespace != "fromflag" || c.Listen != "127.0.0.1:1" {
			t.Fatalf("flags: %+v", c)
		}
	})
}

func TestConfigLegacyAliases(t *testing.T) {
	p := writeYAML(t, `redis_url: redis://x:1/0
numWorkerThreads: 12
workerThreadPollingIntervalInMillis: 250
numEventsProcessedPerTransaction: 40
httpRetryCount: 3
logFailedRequests: true
createTablesIfNotExists: false
port: 9191
`)
	c, _, err := Load("server", []string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkerConcurrency != 12 || c.PollInterval != 250*time.Millisecond || c.Batch != 40 ||
		c.MaxAttempts != 4 || !c.LogFailedRequests || c.CreateTables || c.Listen != ":9191" {
		t.Fatalf("aliases: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"redis url required":   {env: map[string]string{"CASSATA_REDIS_URL": ""}},
		"bad auth":             {env: map[string]string{"CASSATA_REDIS_URL": "redis://x", "CASSATA_AUTH": "maybe"}},
		"bad number":           {env: map[string]string{"CASSATA_REDIS_URL": "redis://x", "CASSATA_WORKER_CONCURRENCY": "lots"}},
		"bad duration":         {env: map[string]string{"CASSATA_REDIS_URL": "redis://x", "CASSATA_RETENTION": "1 day"}},
		"bad flag":             {env: map[string]string{"CASSATA_REDIS_URL": "redis://x"}, args: []string{"--nope"}},
		"missing config file":  {env: map[string]string{"CASSATA_REDIS_URL": "redis://x"}, args: []string{"--config", "/nonexistent.yaml"}},
		"dead after too short": {env: map[string]string{"CASSATA_REDIS_URL": "redis://x", "CASSATA_HEARTBEAT_INTERVAL": "5s", "CASSATA_DEAD_AFTER": "6s"}},
		"negative heartbeat":   {env: map[string]string{"CASSATA_REDIS_URL": "redis://x", "CASSATA_HEARTBEAT_INTERVAL": "-1s"}},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if _, _, err := Load("server", tc.args); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// TestWakeHorizonCoversFullRounds: whatever a process's poll interval, its
// wake horizon is at least redisstore.DefaultWakeHorizon, how often every
// worker asks every shard at most: a server polling every 100ms must still
// wake the workers for an event due in 500ms, which a worker polling every
// 5s would otherwise find only at its next full round, up to a second late.
func TestWakeHorizonCoversFullRounds(t *testing.T) {
	for _, tc := range []struct{ poll, want time.Duration }{
		{0, redisstore.DefaultWakeHorizon},
		{100 * time.Millisecond, redisstore.DefaultWakeHorizon},
		{5 * time.Second, 5 * time.Second},
	} {
		c := Config{PollInterval: tc.poll}
		if got := c.RedisConn().Store.WakeHorizon; got != tc.want {
			t.Errorf("poll interval %v: wake horizon %v, want %v", tc.poll, got, tc.want)
		}
	}
}
