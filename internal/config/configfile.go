package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The YAML configuration file (--config / CASSATA_CONFIG, API.md §1). It
// holds Cassata's own keys (Settings' YAML keys) and the original
// Cassata's names, at the top level or nested as in the original's
// Dropwizard files, so an original service or worker config file starts
// Cassata unchanged:
//
//	service:                                 the original service's section
//	  port: 8088                             → listen :8088 (server and dev; dev: 127.0.0.1:8088)
//	  createTablesIfNotExists: true          → create_tables
//	workerThreadProperties:                  the original worker's section
//	  numWorkerThreads: 5                    → worker_concurrency
//	  workerThreadPollingInterval: 10        → poll_interval 10s (seconds, as the original documents)
//	  workerThreadPollingIntervalInMillis: 10000  → poll_interval 10s
//	  numEventsProcessedPerTransaction: 5    → claim_batch
//	  httpRetryCount: 5                      → max_attempts 6 (retries after the first attempt)
//	  logFailedRequests: true                → log_failed_requests
//	database:                                the original's JDBI data source
//	  url: jdbc:mysql://db:3306/cassata      → archive_dsn mysql://rw:secret@db:3306/cassata
//	  user: rw
//	  password: secret
//	server:                                  Dropwizard's: only the first application connector's port
//	  applicationConnectors: [{type: http, port: 8085}]   is read (→ listen, when no other port is given)
//	logging: ...   metrics: ...              Dropwizard's: ignored, with one warning
//
// The original names are accepted in either section and at the top level.
// Any other key is an error naming its path (a typo must not be silently
// ignored), and so is a value of the wrong type.

// Warning is a warning found while loading the configuration, logged
// once the logger exists.
type Warning struct {
	msg  string
	args []any
}

// dropwizardSections are the original's Dropwizard sections Cassata has no
// use for (server is read for its port only).
var dropwizardSections = map[string]bool{"server": true, "logging": true, "metrics": true, "health": true, "admin": true}

// dataSourceKeys are the settings of Dropwizard's JDBI data source
// (io.dropwizard.db.DataSourceFactory) besides url, user and password: the
// pool and driver settings of the JVM, with no meaning here.
var dataSourceKeys = map[string]bool{
	"driverClass": true, "properties": true, "maxWaitForConnection": true, "validationQuery": true,
	"validationQueryTimeout": true, "minSize": true, "maxSize": true, "initialSize": true,
	"checkConnectionWhileIdle": true, "checkConnectionOnBorrow": true, "checkConnectionOnConnect": true,
	"checkConnectionOnReturn": true, "evictionInterval": true, "minIdleTime": true, "maxConnectionAge": true,
	"autoCommentsEnabled": true, "abandonWhenPercentageFull": true, "alternateUsernamesAllowed": true,
	"commitOnReturn": true, "rollbackOnReturn": true, "autoCommitByDefault": true, "readOnlyByDefault": true,
	"defaultCatalog": true, "defaultTransactionIsolation": true, "useFairQueue": true,
	"initializationQuery": true, "logAbandonedConnections": true, "logValidationErrors": true,
	"removeAbandoned": true, "removeAbandonedTimeout": true, "jdbcInterceptors": true,
	"ignoreExceptionOnPreLoad": true, "validatorClassName": true, "validationInterval": true,
	"defaultReadOnly": true, "defaultAutoCommit": true,
}

// fileReader applies one YAML file to a config.
type fileReader struct {
	path string
	mode string
	c    *Config

	// setBy is the key path that set each setting: a setting given twice
	// (numWorkerThreads and worker_concurrency, or at the top level and
	// nested) is an error rather than a silent choice.
	setBy map[string]string
	// ports are the original's port settings found, by precedence.
	topPort, connectorPort, servicePort *portAt
	// databaseDSN is the archive DSN of the database section.
	databaseDSN string
	// ignored lists what is read and deliberately not used.
	ignored []string
}

type portAt struct {
	path string
	port int
	host string // server.applicationConnectors[0].bindHost
}

// ReadFile applies the YAML file at path over c, for mode. It returns
// the archive DSN of the original's database section ("" when none).
func ReadFile(c *Config, path, mode string) (databaseDSN string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config file: %w", err)
	}
	f := &fileReader{path: path, mode: mode, c: c, setBy: map[string]string{}}
	if err := f.read(data); err != nil {
		return "", fmt.Errorf("config file %s: %w", path, err)
	}
	return f.databaseDSN, nil
}

// OriginalDatabaseDSN reads a configuration file (an original Cassata one,
// typically) and returns the mysql:// DSN its database section names: the
// source of `cassata import --config`. Unknown keys are errors as for
// every config file.
func OriginalDatabaseDSN(path string) (string, error) {
	c := Defaults("import")
	dsn, err := ReadFile(&c, path, "import")
	if err != nil {
		return "", err
	}
	if dsn == "" {
		return "", fmt.Errorf("config file %s has no database section (url: jdbc:mysql://host:port/db, user, password)", path)
	}
	return dsn, nil
}

func (f *fileReader) read(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return fmt.Errorf("line %d: a second YAML document; a config file holds one", more.Line)
	}
	root := resolve(&doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = resolve(root.Content[0])
	}
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of settings (key: value)", root.Line)
	}
	err := eachKey(root, "", func(key, path string, v *yaml.Node) error {
		if s, ok := settingByYAML(key); ok {
			return f.native(key, path, v, s)
		}
		if set, ok := originalKeys[key]; ok {
			return set(f, path, v)
		}
		switch {
		case key == "service" || key == "workerThreadProperties":
			return f.section(path, v)
		case key == "database":
			return f.database(path, v)
		case key == "server":
			f.ignored = append(f.ignored, path)
			return f.server(path, v)
		case dropwizardSections[key]:
			f.ignored = append(f.ignored, path)
			return nil
		}
		return unknownKey(path, v)
	})
	if err != nil {
		return err
	}
	f.applyPort()
	if len(f.ignored) > 0 {
		f.warn("config file: ignoring the original Cassata's settings that have no meaning here",
			"file", f.path, "ignored", f.ignored)
	}
	return nil
}

func (f *fileReader) warn(msg string, args ...any) {
	f.c.warnings = append(f.c.warnings, Warning{msg: msg, args: args})
}

// section reads the original's service or workerThreadProperties section.
func (f *fileReader) section(path string, v *yaml.Node) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: want a mapping of settings (line %d)", path, v.Line)
	}
	return eachKey(v, path, func(key, kpath string, kv *yaml.Node) error {
		if set, ok := originalKeys[key]; ok {
			return set(f, kpath, kv)
		}
		return unknownKey(kpath, kv)
	})
}

// claim records that path sets setting; a second key setting it is an error.
func (f *fileReader) claim(setting, path string) error {
	if prev, ok := f.setBy[setting]; ok {
		return fmt.Errorf("%s and %s both set %s: keep one", prev, path, setting)
	}
	f.setBy[setting] = path
	return nil
}

// native sets one of Cassata's own keys.
func (f *fileReader) native(key, path string, v *yaml.Node, s Setting) error {
	if isNull(v) {
		return nil
	}
	if err := f.claim(key, path); err != nil {
		return err
	}
	switch p := s.field(f.c).(type) {
	case *string:
		s, err := scalarString(path, v)
		if err != nil {
			return err
		}
		*p = s
	case *int:
		n, err := scalarInt(path, v)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := scalarBool(path, v)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := scalarDuration(path, v)
		if err != nil {
			return err
		}
		*p = d
	default:
		return fmt.Errorf("%s: no YAML reading for %T", path, p)
	}
	return nil
}

// originalKeys are the original Cassata's settings, by name: each applies
// its value (found at path) to the config.
var originalKeys = map[string]func(f *fileReader, path string, v *yaml.Node) error{
	"numWorkerThreads": func(f *fileReader, path string, v *yaml.Node) error {
		return f.originalInt("worker_concurrency", path, v, 1, func(n int) { f.c.WorkerConcurrency = n })
	},
	"workerThreadPollingInterval": func(f *fileReader, path string, v *yaml.Node) error {
		return f.originalInt("poll_interval", path, v, 0, func(n int) { f.c.PollInterval = time.Duration(n) * time.Second })
	},
	"workerThreadPollingIntervalInMillis": func(f *fileReader, path string, v *yaml.Node) error {
		return f.originalInt("poll_interval", path, v, 0, func(n int) { f.c.PollInterval = time.Duration(n) * time.Millisecond })
	},
	"numEventsProcessedPerTransaction": func(f *fileReader, path string, v *yaml.Node) error {
		return f.originalInt("claim_batch", path, v, 1, func(n int) { f.c.Batch = n })
	},
	"httpRetryCount": func(f *fileReader, path string, v *yaml.Node) error {
		// The original counts retries after the first attempt.
		return f.originalInt("max_attempts", path, v, 0, func(n int) { f.c.MaxAttempts = n + 1 })
	},
	"logFailedRequests": func(f *fileReader, path string, v *yaml.Node) error {
		return f.originalBool("log_failed_requests", path, v, func(b bool) { f.c.LogFailedRequests = b })
	},
	"createTablesIfNotExists": func(f *fileReader, path string, v *yaml.Node) error {
		return f.originalBool("create_tables", path, v, func(b bool) { f.c.CreateTables = b })
	},
	"port": func(f *fileReader, path string, v *yaml.Node) error {
		if isNull(v) {
			return nil
		}
		p, err := scalarPort(path, v)
		if err != nil {
			return err
		}
		at := &portAt{path: path, port: p}
		if path == "port" {
			if f.topPort != nil {
				return fmt.Errorf("%s given twice", path)
			}
			f.topPort = at
		} else {
			if f.servicePort != nil {
				return fmt.Errorf("%s and %s both set the port: keep one", f.servicePort.path, path)
			}
			f.servicePort = at
		}
		return nil
	},
	// The original worker waited this long before cleaning up events it
	// had locked; leases and the reaper do that here.
	"timeToWaitBeforeCleanup": ignoreOriginal,
	// The original service's switch for its failed-request table; every
	// attempt is in the event's history here.
	"createFailedRequestLog": ignoreOriginal,
}

func ignoreOriginal(f *fileReader, path string, _ *yaml.Node) error {
	f.ignored = append(f.ignored, path)
	return nil
}

func (f *fileReader) originalInt(setting, path string, v *yaml.Node, least int, apply func(int)) error {
	if isNull(v) {
		return nil
	}
	n, err := scalarInt(path, v)
	if err != nil {
		return err
	}
	if n < least {
		return fmt.Errorf("%s: must be at least %d, not %d (line %d)", path, least, n, v.Line)
	}
	if err := f.claim(setting, path); err != nil {
		return err
	}
	apply(n)
	return nil
}

func (f *fileReader) originalBool(setting, path string, v *yaml.Node, apply func(bool)) error {
	if isNull(v) {
		return nil
	}
	b, err := scalarBool(path, v)
	if err != nil {
		return err
	}
	if err := f.claim(setting, path); err != nil {
		return err
	}
	apply(b)
	return nil
}

// server reads the port of Dropwizard's first application connector
// (server.applicationConnectors, or server.connector of a "simple" server);
// the rest of the section is Dropwizard's and ignored.
func (f *fileReader) server(path string, v *yaml.Node) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: want a mapping (line %d)", path, v.Line)
	}
	return eachKey(v, path, func(key, kpath string, kv *yaml.Node) error {
		var conn *yaml.Node
		switch key {
		case "applicationConnectors":
			if isNull(kv) {
				return nil
			}
			if kv.Kind != yaml.SequenceNode {
				return fmt.Errorf("%s: want a list of connectors (line %d)", kpath, kv.Line)
			}
			if len(kv.Content) == 0 {
				return nil
			}
			conn, kpath = resolve(kv.Content[0]), kpath+"[0]"
		case "connector":
			conn = kv
		default:
			return nil
		}
		if isNull(conn) {
			return nil
		}
		if conn.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: want a mapping (line %d)", kpath, conn.Line)
		}
		at := &portAt{path: kpath + ".port", port: -1}
		err := eachKey(conn, kpath, func(ck, cpath string, cv *yaml.Node) error {
			var err error
			switch ck {
			case "port":
				if !isNull(cv) {
					at.port, err = scalarPort(cpath, cv)
				}
			case "bindHost":
				if !isNull(cv) {
					at.host, err = scalarString(cpath, cv)
				}
			}
			return err
		})
		if err != nil || at.port < 0 {
			return err
		}
		if f.connectorPort != nil {
			return fmt.Errorf("%s and %s both set the port: keep one", f.connectorPort.path, at.path)
		}
		f.connectorPort = at
		return nil
	})
}

// applyPort sets the listen address from the original's port settings, for
// the server, dev and healthcheck (which probes the server): the original's
// port is its service's; a worker keeps its own (:8086). Cassata's listen
// key wins; then the top-level port, the Dropwizard connector's (what the
// original service really bound), and the service section's. In dev a
// port alone means loopback (config.validate).
func (f *fileReader) applyPort() {
	var ports []*portAt
	for _, p := range []*portAt{f.topPort, f.connectorPort, f.servicePort} {
		if p != nil {
			ports = append(ports, p)
		}
	}
	if len(ports) == 0 || (f.mode != ModeServer && f.mode != ModeDev && f.mode != ModeHealthcheck) {
		return
	}
	use := ports[0]
	listenAt, hasListen := f.setBy["listen"]
	if hasListen {
		f.warn("config file: listen is set, so the original's port settings are not used", "file", f.path, "listen", listenAt, "port", use.path)
		return
	}
	for _, p := range ports[1:] {
		if p.port != use.port {
			f.warn("config file: several ports given; using the first of port, server.applicationConnectors, service.port",
				"file", f.path, "used", use.path, "not_used", p.path)
		}
	}
	host := ""
	if f.mode != "dev" { // dev: a port alone never widens beyond loopback
		host = use.host
	}
	f.c.Listen = net.JoinHostPort(host, strconv.Itoa(use.port))
}

// database reads the original's JDBI data source into the archive DSN.
func (f *fileReader) database(path string, v *yaml.Node) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: want a mapping with url, user and password (line %d)", path, v.Line)
	}
	var url, user, password string
	var hasURL, hasUser, hasPassword bool
	var ignored []string
	err := eachKey(v, path, func(key, kpath string, kv *yaml.Node) error {
		var err error
		switch {
		case key == "url":
			url, err = scalarString(kpath, kv)
			hasURL = !isNull(kv)
		case key == "user":
			user, err = scalarString(kpath, kv)
			hasUser = !isNull(kv)
		case key == "password":
			password, err = scalarString(kpath, kv)
			hasPassword = !isNull(kv)
		case dataSourceKeys[key]:
			ignored = append(ignored, key)
		default:
			err = unknownKey(kpath, kv)
		}
		return err
	})
	if err != nil {
		return err
	}
	if !hasURL || url == "" {
		return fmt.Errorf("%s.url is required (jdbc:mysql://host:port/db)", path)
	}
	dsn, dropped, err := JDBCArchiveDSN(url, JDBCCredentials{user: user, password: password, hasUser: hasUser, hasPassword: hasPassword})
	if err != nil {
		return fmt.Errorf("%s.url: %w", path, err)
	}
	if f.mode != "import" {
		if err := f.claim("archive_dsn", path); err != nil {
			return err
		}
	}
	if len(dropped) > 0 {
		f.warn("config file: JDBC URL parameters without a MySQL driver equivalent are dropped",
			"file", f.path, "key", path+".url", "dropped", dropped)
	}
	f.databaseDSN = dsn
	if f.mode != "import" { // import: the original's database is the source, not the archive
		f.c.ArchiveDSN = dsn
	}
	return nil
}

// eachKey calls fn for each key of mapping m with its path under parent.
// Keys must be plain scalars (an anchor's merge key "<<" is not a setting).
func eachKey(m *yaml.Node, parent string, fn func(key, path string, v *yaml.Node) error) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: want a plain key under %s", k.Line, cmp.Or(parent, "the top level"))
		}
		path := k.Value
		if parent != "" {
			path = parent + "." + k.Value
		}
		if err := fn(k.Value, path, v); err != nil {
			return err
		}
	}
	return nil
}

func unknownKey(path string, v *yaml.Node) error {
	return fmt.Errorf("%s: unknown setting (line %d); see the configuration section of the README for the names", path, v.Line)
}

// resolve follows YAML aliases (*anchor).
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func describe(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(v.Value)
}

func scalarString(path string, v *yaml.Node) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if v.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s: want a string, got %s (line %d)", path, describe(v), v.Line)
	}
	return v.Value, nil
}

func scalarInt(path string, v *yaml.Node) (int, error) {
	if v.Kind == yaml.ScalarNode && (v.Tag == "!!int" || v.Tag == "!!str") {
		if n, err := strconv.Atoi(strings.TrimSpace(v.Value)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s: want a whole number, got %s (line %d)", path, describe(v), v.Line)
}

func scalarBool(path string, v *yaml.Node) (bool, error) {
	if v.Kind == yaml.ScalarNode {
		if b, ok := parseBool(v.Value); ok {
			return b, nil
		}
	}
	return false, fmt.Errorf("%s: want true or false, got %s (line %d)", path, describe(v), v.Line)
}

// parseBool reads true/false as strconv does, and yes/no, on/off.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "on":
		return true, true
	case "no", "off":
		return false, true
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return b, err == nil
}

// scalarDuration reads a Go duration ("30s", "1m30s"). A bare number is
// refused: YAML would make it nanoseconds, which nobody means.
func scalarDuration(path string, v *yaml.Node) (time.Duration, error) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
		if d, err := time.ParseDuration(strings.TrimSpace(v.Value)); err == nil {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%s: want a duration with its unit, such as \"30s\" or \"5m\", got %s (line %d)", path, describe(v), v.Line)
}

func scalarPort(path string, v *yaml.Node) (int, error) {
	p, err := scalarInt(path, v)
	if err != nil {
		return 0, err
	}
	if p < 0 || p > 65535 {
		return 0, fmt.Errorf("%s: want a port between 0 and 65535, got %d (line %d)", path, p, v.Line)
	}
	return p, nil
}
