package redisstore

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
)

func TestConnClusterSeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in             string
		addrs          []string
		user, password string
		tls            bool
		err            string
	}{
		{in: "10.0.0.1:7000,10.0.0.2:7000, 10.0.0.3:7000", addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}},
		{in: "redis://10.0.0.1:7000/,redis://10.0.0.2:7000/0", addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}},
		// Credentials of the first URL that has them hold for every node.
		{in: "redis://:s3cret@a:7000,b:7000", addrs: []string{"a:7000", "b:7000"}, password: "s3cret"},
		{in: "redis://a:7000,rediss://app:pw%40x@b:7001", addrs: []string{"a:7000", "b:7001"}, user: "app", password: "pw@x", tls: true},
		{in: "rediss://cache.example.com", addrs: []string{"cache.example.com:6379"}, tls: true},
		{in: "redis://a:7000/3", err: "only database 0"},
		{in: "http://a:7000", err: "scheme"},
		{in: "a", err: "want host:port"},
		{in: " , ", err: "no cluster seeds"},
	}
	for _, tt := range tests {
		seeds, err := ParseClusterSeeds(tt.in)
		addrs, user, password, tlsConfig := seeds.Addrs, seeds.User, seeds.Password, seeds.TLS
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseClusterSeeds(%q) = %v, want an error about %q", tt.in, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("ParseClusterSeeds(%q): the error shows the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil || !slices.Equal(addrs, tt.addrs) || user != tt.user || password != tt.password || (tlsConfig != nil) != tt.tls {
			t.Errorf("ParseClusterSeeds(%q) = %v, %q, %q, TLS %v, %v; want %v, %q, %q, TLS %v",
				tt.in, addrs, user, password, tlsConfig != nil, err, tt.addrs, tt.user, tt.password, tt.tls)
		}
	}
}

// TestConnDialClusterWithPassword: the seeds of a password-protected
// cluster, given as redis:// URLs, connect with the password on every
// master (the shards' keys live on all of them).
func TestConnDialClusterWithPassword(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.Nodes() {
		if err := n.Client().ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
			t.Fatal(err)
		}
	}
	seeds := make([]string, 0, 3)
	for _, a := range c.Addrs() {
		seeds = append(seeds, "redis://:s3cret@"+a)
	}
	rdb, err := Dial(ConnConfig{Cluster: true, URL: strings.Join(seeds, ",")})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc := rdb.(*redis.ClusterClient)
	var masters atomic.Int32
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		return m.Ping(ctx).Err()
	})
	if err != nil || masters.Load() != 3 {
		t.Fatalf("PING on each master with the password: %d masters, %v", masters.Load(), err)
	}
	for i := range 30 { // keys in every slot range: every master answers
		if err := rdb.Set(ctx, "k"+strings.Repeat("x", i), i, 0).Err(); err != nil {
			t.Fatalf("SET through the cluster client: %v", err)
		}
	}

	noAuth, err := Dial(ConnConfig{Cluster: true, URL: c.Seeds()})
	if err != nil {
		t.Fatal(err)
	}
	defer noAuth.Close()
	if err := noAuth.Set(ctx, "k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("SET without the password: %v, want NOAUTH", err)
	}
}

func TestConnRedactURL(t *testing.T) {
	t.Parallel()
	if got := RedactURL("redis://user:secret@host:6379/0"); got != "redis://***@host:6379/0" {
		t.Fatalf("got %q", got)
	}
	if got := RedactURL("redis://host:6379/0"); got != "redis://host:6379/0" {
		t.Fatalf("got %q", got)
	}
}

func TestConnConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c   ConnConfig
		err string
	}{
		{ConnConfig{URL: "redis://127.0.0.1:6379/0"}, ""},
		{ConnConfig{URL: "a:7000,b:7000", Cluster: true}, ""},
		{ConnConfig{}, "CASSATA_REDIS_URL"},
		{ConnConfig{URL: "http://x"}, "CASSATA_REDIS_URL"},
		{ConnConfig{URL: "redis://a:7000/3", Cluster: true}, "only database 0"},
		{ConnConfig{URL: "redis://a", MaxBackoff: -1}, "MaxBackoff"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%+v.Validate() = %v, want %q", tt.c, err, tt.err)
		}
	}
	if c := (ConnConfig{}).WithDefaults(); c.AttemptTimeout != DefaultAttemptTimeout || c.MaxBackoff != DefaultMaxBackoff || c.Logger == nil {
		t.Errorf("WithDefaults() = %+v", c)
	}
}

// TestConnOpenWaitsForRedis: Open retries while Redis is down (connection
// refused) and returns the store once Redis is back.
func TestConnOpenWaitsForRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rs.Stop()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := Open(ctx, ConnConfig{URL: rs.URL(), Store: Config{Namespace: "open"}})
		if err == nil {
			st.Client().Close()
		}
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	rs.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("Open: %v", err)
	}
}

// TestConnOpenGivesUpOnPermanentErrors: a wrong password is not retried.
func TestConnOpenGivesUpOnPermanentErrors(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	if err := rs.Client().ConfigSet(context.Background(), "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, ConnConfig{URL: "redis://:wrong@" + rs.Addr()})
	if err == nil || ctx.Err() != nil || IsTransient(err) {
		t.Fatalf("Open with a wrong password = %v (ctx %v), want a permanent error at once", err, ctx.Err())
	}
}
