package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// clusterSeeds reads CASSATA_REDIS_URL for a Redis Cluster: comma-separated
// seeds, each host:port or a redis:// or rediss:// URL. A cluster has one
// password for all its nodes and only database 0, so credentials come from
// the first URL that has them and a database other than 0 is refused;
// rediss:// turns TLS on (each node's certificate is checked against its
// own host name).
func clusterSeeds(s string) (addrs []string, user, password string, tlsConfig *tls.Config, err error) {
	for _, seed := range strings.Split(s, ",") {
		seed = strings.TrimSpace(seed)
		if seed == "" {
			continue
		}
		if !strings.Contains(seed, "://") {
			if _, _, err := net.SplitHostPort(seed); err != nil {
				return nil, "", "", nil, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %q: want host:port or a redis:// URL", seed)
			}
			addrs = append(addrs, seed)
			continue
		}
		u, err := url.Parse(seed)
		if err != nil {
			return nil, "", "", nil, fmt.Errorf("CASSATA_REDIS_URL: cluster seed: %w", err)
		}
		switch u.Scheme {
		case "redis":
		case "rediss":
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		default:
			return nil, "", "", nil, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %s: scheme %q, want redis or rediss", redactURL(seed), u.Scheme)
		}
		if u.Hostname() == "" {
			return nil, "", "", nil, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %s has no host", redactURL(seed))
		}
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return nil, "", "", nil, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %s: a Redis Cluster has only database 0", redactURL(seed))
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		addrs = append(addrs, net.JoinHostPort(u.Hostname(), port))
		if u.User != nil && user == "" && password == "" {
			user = u.User.Username()
			password, _ = u.User.Password()
		}
	}
	if len(addrs) == 0 {
		return nil, "", "", nil, fmt.Errorf("CASSATA_REDIS_URL: no cluster seeds")
	}
	return addrs, user, password, tlsConfig, nil
}
