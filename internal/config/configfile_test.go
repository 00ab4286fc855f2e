package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestOriginalConfigFiles: the original Cassata's service and worker config
// files (Dropwizard sections and all, testdata/) load unchanged, with the
// settings they mean, and one warning lists what is ignored.
func TestOriginalConfigFiles(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:6379/0")
	const serviceDSN = "mysql://cassata_rw:s3cr3t%3Ap%40ss%2Fw%3Frd%231@db.internal:3306/cassata?timeout=5000ms"
	const workerDSN = "mysql://cassata_rw:s3cr3t%3Ap%40ss%2Fw%3Frd%231@db.internal:3306/cassata"
	tests := []struct {
		name, file, mode string
		check            func(c Config) bool
		ignored          []string // the one warning's list
	}{
		{"service file, server", "testdata/original-service.yaml", "server", func(c Config) bool {
			return c.Listen == ":8088" && c.CreateTables && c.ArchiveDSN == serviceDSN && c.WorkerConcurrency == 100
		}, []string{"service.createFailedRequestLog", "logging", "server", "metrics"}},
		{"service file, dev: the port stays on loopback", "testdata/original-service.yaml", "dev", func(c Config) bool {
			return c.Listen == "127.0.0.1:8088" && c.ArchiveDSN == serviceDSN
		}, nil},
		{"service file, worker: the port is the service's", "testdata/original-service.yaml", "worker", func(c Config) bool {
			return c.Listen == ":8086" && c.ArchiveDSN == serviceDSN
		}, nil},
		{"worker file", "testdata/original-worker.yaml", "worker", func(c Config) bool {
			return c.WorkerConcurrency == 8 && c.Batch == 10 && c.PollInterval == 10*time.Second &&
				c.MaxAttempts == 4 && c.LogFailedRequests && c.ArchiveDSN == workerDSN && c.Listen == ":8086"
		}, []string{"workerThreadProperties.timeToWaitBeforeCleanup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load(tt.mode, []string{"--config", tt.file})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("settings: %+v", c)
			}
			var logs bytes.Buffer
			c.LogWarnings(slog.New(slog.NewTextHandler(&logs, nil)))
			lines := strings.Count(logs.String(), "ignoring the original Cassata's settings")
			if tt.ignored != nil {
				if lines != 1 {
					t.Fatalf("want one warning about ignored settings, got %d:\n%s", lines, logs.String())
				}
				for _, k := range tt.ignored {
					if !strings.Contains(logs.String(), k) {
						t.Errorf("the warning does not list %s:\n%s", k, logs.String())
					}
				}
			}
			if strings.Contains(logs.String(), "s3cr3t") {
				t.Fatalf("a warning shows the database password:\n%s", logs.String())
			}
		})
	}
	t.Run("import reads the database section as its source", func(t *testing.T) {
		t.Setenv("CASSATA_ARCHIVE_DSN", "")
		dsn, err := OriginalDatabaseDSN("testdata/original-worker.yaml")
		if err != nil || dsn != workerDSN {
			t.Fatalf("originalDatabaseDSN = %q, %v; want %q", dsn, err, workerDSN)
		}
		c, _, err := Load("import", []string{"--config", "testdata/original-worker.yaml"})
		if err != nil || c.ArchiveDSN != "" {
			t.Fatalf("import's archive DSN = %q, %v; the original's database is its source, not its archive", c.ArchiveDSN, err)
		}
		if _, err := OriginalDatabaseDSN(writeYAML(t, "redis_url: redis://x:1/0\n")); err == nil || !strings.Contains(err.Error(), "no database section") {
			t.Fatalf("a file without a database section: %v", err)
		}
	})
}

// TestConfigFileKeys: Cassata's and the original's keys, at the top level
// and nested, and what each sets.
func TestConfigFileKeys(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:6379/0")
	tests := []struct {
		name, mode, yaml string
		check            func(c Config) bool
	}{
		{"polling interval is seconds", "worker", "workerThreadPollingInterval: 10\n",
			func(c Config) bool { return c.PollInterval == 10*time.Second }},
		{"polling interval in millis", "worker", "workerThreadPollingIntervalInMillis: 250\n",
			func(c Config) bool { return c.PollInterval == 250*time.Millisecond }},
		{"nested worker settings", "worker", "workerThreadProperties:\n  numWorkerThreads: 3\n  workerThreadPollingInterval: 2\n  httpRetryCount: 0\n",
			func(c Config) bool {
				return c.WorkerConcurrency == 3 && c.PollInterval == 2*time.Second && c.MaxAttempts == 1
			}},
		{"logFailedRequests at the top", "worker", "logFailedRequests: true\n", func(c Config) bool { return c.LogFailedRequests }},
		{"logFailedRequests under workerThreadProperties", "worker", "workerThreadProperties:\n  logFailedRequests: true\n",
			func(c Config) bool { return c.LogFailedRequests }},
		{"logFailedRequests under service", "worker", "service:\n  logFailedRequests: yes\n", func(c Config) bool { return c.LogFailedRequests }},
		{"log_failed_requests", "worker", "log_failed_requests: true\n", func(c Config) bool { return c.LogFailedRequests }},
		{"createTablesIfNotExists under service", "server", "service:\n  createTablesIfNotExists: false\n",
			func(c Config) bool { return !c.CreateTables }},
		{"port under service", "server", "service:\n  port: 9000\n", func(c Config) bool { return c.Listen == ":9000" }},
		{"port under service, dev", "dev", "service:\n  port: 9000\n", func(c Config) bool { return c.Listen == "127.0.0.1:9000" }},
		{"port at the top, dev", "dev", "port: 8085\n", func(c Config) bool { return c.Listen == "127.0.0.1:8085" }},
		{"first application connector", "server", "server:\n  applicationConnectors:\n    - type: http\n      port: 9002\n    - type: https\n      port: 9443\n",
			func(c Config) bool { return c.Listen == ":9002" }},
		{"connector bindHost", "server", "server:\n  applicationConnectors:\n    - {type: http, port: 9002, bindHost: 127.0.0.1}\n",
			func(c Config) bool { return c.Listen == "127.0.0.1:9002" }},
		{"connector bindHost never widens dev", "dev", "server:\n  applicationConnectors:\n    - {type: http, port: 9002, bindHost: 0.0.0.0}\n",
			func(c Config) bool { return c.Listen == "127.0.0.1:9002" }},
		{"simple server's connector", "server", "server:\n  type: simple\n  connector:\n    type: http\n    port: 9001\n",
			func(c Config) bool { return c.Listen == ":9001" }},
		{"the connector before service.port", "server", "service:\n  port: 8088\nserver:\n  applicationConnectors:\n    - port: 8080\n",
			func(c Config) bool { return c.Listen == ":8080" }},
		{"listen before any port", "server", "listen: 127.0.0.1:9100\nport: 9003\n", func(c Config) bool { return c.Listen == "127.0.0.1:9100" }},
		{"database credentials in the URL", "worker", "database:\n  url: jdbc:mysql://h:3307/db?user=u&password=p%40ss\n",
			func(c Config) bool { return c.ArchiveDSN == "mysql://u:p%40ss@h:3307/db" }},
		{"an empty section", "server", "service:\nworkerThreadProperties: {}\n", func(c Config) bool { return c.Listen == ":8085" }},
		{"an empty file", "server", "", func(c Config) bool { return c.Listen == ":8085" }},
		{"native keys", "worker", "namespace: ns\nretention: 48h\nredis_cluster: true\nclaim_batch: 7\njwt_max_lifetime: 1h\n",
			func(c Config) bool {
				return c.Namespace == "ns" && c.Retention == 48*time.Hour && c.RedisCluster && c.Batch == 7 && c.JWTMaxLifetime == time.Hour
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load(tt.mode, []string{"--config", writeYAML(t, tt.yaml)})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("settings: %+v", c)
			}
		})
	}
}

// TestConfigFileErrors: an unknown key (a typo, at any depth) or a value of
// the wrong type is an error that names the key's path.
func TestConfigFileErrors(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:6379/0")
	tests := []struct {
		name, yaml, want string
	}{
		{"typo of an original key", "numWorkerThread: 5\n", "numWorkerThread: unknown setting (line 1)"},
		{"typo of a native key", "redis_ulr: redis://x\n", "redis_ulr: unknown setting"},
		{"typo under workerThreadProperties", "workerThreadProperties:\n  numWorkerThread: 5\n", "workerThreadProperties.numWorkerThread: unknown setting (line 2)"},
		{"typo under service", "service:\n  prot: 8085\n", "service.prot: unknown setting"},
		{"typo under database", "database:\n  url: jdbc:mysql://h/db\n  usr: rw\n", "database.usr: unknown setting"},
		{"unknown section", "workers:\n  numWorkerThreads: 5\n", "workers: unknown setting"},
		{"a native key nested", "service:\n  redis_url: redis://x\n", "service.redis_url: unknown setting"},
		{"not a number", "numWorkerThreads: five\n", `numWorkerThreads: want a whole number, got "five"`},
		{"a list for a number", "workerThreadProperties:\n  httpRetryCount: [1]\n", "workerThreadProperties.httpRetryCount: want a whole number, got a list"},
		{"a native number", "worker_concurrency: many\n", "worker_concurrency: want a whole number"},
		{"a duration without unit", "poll_interval: 5\n", "poll_interval: want a duration with its unit"},
		{"not a boolean", "redis_cluster: maybe\n", "redis_cluster: want true or false"},
		{"nested boolean", "service:\n  createTablesIfNotExists: sometimes\n", "service.createTablesIfNotExists: want true or false"},
		{"a mapping for a string", "namespace: {a: 1}\n", "namespace: want a string, got a mapping"},
		{"no worker threads", "numWorkerThreads: 0\n", "numWorkerThreads: must be at least 1"},
		{"negative polling", "workerThreadProperties:\n  workerThreadPollingInterval: -1\n", "must be at least 0"},
		{"port out of range", "service:\n  port: 70000\n", "service.port: want a port between 0 and 65535"},
		{"connector port not a number", "server:\n  applicationConnectors:\n    - port: http\n", "server.applicationConnectors[0].port: want a whole number"},
		{"section not a mapping", "workerThreadProperties: 5\n", "workerThreadProperties: want a mapping"},
		{"one setting twice", "numWorkerThreads: 2\nworker_concurrency: 3\n", "numWorkerThreads and worker_concurrency both set worker_concurrency"},
		{"nested and top", "httpRetryCount: 2\nworkerThreadProperties:\n  httpRetryCount: 3\n", "httpRetryCount and workerThreadProperties.httpRetryCount both set"},
		{"both polling intervals", "workerThreadPollingInterval: 1\nworkerThreadPollingIntervalInMillis: 10\n", "both set poll_interval"},
		{"database and archive_dsn", "archive_dsn: sqlite:///tmp/a.db\ndatabase:\n  url: jdbc:mysql://h/db\n  user: u\n", "archive_dsn and database both set archive_dsn"},
		{"database without url", "database:\n  user: rw\n", "database.url is required"},
		{"database not MySQL", "database:\n  url: jdbc:postgresql://h/db\n  user: u\n", "database.url: jdbc:postgresql is not supported"},
		{"not YAML", "service: [\n", "yaml:"},
		{"two documents", "port: 1\n---\nport: 2\n", "a second YAML document"},
		{"a list at the top", "- port\n", "want a mapping of settings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load("server", []string{"--config", writeYAML(t, tt.yaml)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to say %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "config file ") {
				t.Fatalf("err = %v; want it to name the file", err)
			}
		})
	}
}

// TestLogFailedRequestsSetting: YAML < CASSATA_LOG_FAILED_REQUESTS < flag.
func TestLogFailedRequestsSetting(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:6379/0")
	on := writeYAML(t, "workerThreadProperties:\n  logFailedRequests: true\n")
	tests := []struct {
		name string
		env  string
		args []string
		want bool
	}{
		{"default off", "", nil, false},
		{"env", "true", nil, true},
		{"yaml", "", []string{"--config", on}, true},
		{"env over yaml", "false", []string{"--config", on}, false},
		{"a bare flag", "", []string{"--log-failed-requests"}, true},
		{"flag over env", "true", []string{"--log-failed-requests=false"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CASSATA_LOG_FAILED_REQUESTS", tt.env)
			c, _, err := Load("worker", tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if c.LogFailedRequests != tt.want {
				t.Fatalf("LogFailedRequests = %v, want %v", c.LogFailedRequests, tt.want)
			}
		})
	}
	t.Setenv("CASSATA_LOG_FAILED_REQUESTS", "sometimes")
	if _, _, err := Load("worker", nil); err == nil || !strings.Contains(err.Error(), "CASSATA_LOG_FAILED_REQUESTS") {
		t.Fatalf("a bad value: %v", err)
	}
}

// TestListenAddress: a bare port completes to an address; dev stays on
// loopback unless the address names its host.
func TestListenAddress(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:6379/0")
	tests := []struct {
		mode, listen, want string
	}{
		{"server", ":9000", ":9000"},
		{"server", "9000", ":9000"},
		{"server", "0.0.0.0:9000", "0.0.0.0:9000"},
		{"dev", ":9000", "127.0.0.1:9000"},
		{"dev", "9000", "127.0.0.1:9000"},
		{"dev", "localhost:9000", "localhost:9000"},
		{"dev", "0.0.0.0:9000", "0.0.0.0:9000"}, // explicit: allowed, serve warns loudly
		{"dev", "[::]:9000", "[::]:9000"},
		{"worker", "127.0.0.1:0", "127.0.0.1:0"},
		{"server", "nonsense", ""},
		{"server", "host:http", ""},
		{"server", ":99999", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode+" "+tt.listen, func(t *testing.T) {
			t.Setenv("CASSATA_LISTEN", tt.listen)
			c, _, err := Load(tt.mode, nil)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "CASSATA_LISTEN") {
					t.Fatalf("listen %q: err = %v, want an error naming CASSATA_LISTEN", tt.listen, err)
				}
				return
			}
			if err != nil || c.Listen != tt.want {
				t.Fatalf("listen = %q, %v; want %q", c.Listen, err, tt.want)
			}
		})
	}
}

// TestConfigMisc: JWT lifetime, placeholders, stray arguments.
func TestConfigMisc(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:6379/0")
	t.Run("jwt max lifetime", func(t *testing.T) {
		c, _, err := Load("server", nil)
		if err != nil || c.JWTMaxLifetime != 24*time.Hour {
			t.Fatalf("default = %s, %v", c.JWTMaxLifetime, err)
		}
		t.Setenv("CASSATA_JWT_MAX_LIFETIME", "1h")
		if c, _, err = Load("server", nil); err != nil || c.JWTMaxLifetime != time.Hour {
			t.Fatalf("env = %s, %v", c.JWTMaxLifetime, err)
		}
		t.Setenv("CASSATA_JWT_MAX_LIFETIME", "-1h")
		if _, _, err = Load("server", nil); err == nil || !strings.Contains(err.Error(), "CASSATA_JWT_MAX_LIFETIME") {
			t.Fatalf("negative: %v", err)
		}
	})
	for _, env := range []string{"CASSATA_ADMIN_PASSWORD", "CASSATA_ADMIN_TOKEN"} {
		t.Run("placeholder "+env, func(t *testing.T) {
			t.Setenv(env, "<a long random secret>")
			if _, _, err := Load("server", nil); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("err = %v, want the placeholder refused", err)
			}
		})
	}
	t.Run("stray argument", func(t *testing.T) {
		if _, _, err := Load("server", []string{"--redis-cluster", "true"}); err == nil || !strings.Contains(err.Error(), `"true"`) {
			t.Fatalf("err = %v", err)
		}
	})
}
