package redistest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
)

func TestStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := redistest.Start(t)

	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want a 127.0.0.1 address", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through URL(): %v", err)
	}
	if got, err := s.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET through Client() = %q, %v; want v", got, err)
	}
	// Without persistence, nothing survives a restart.
	s.Restart(t)
	if err := s.Client().Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart without AOF: err = %v, want redis.Nil", err)
	}
}

func TestServersAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := redistest.Start(t)
	c := s.Client()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	s.Kill()
	ctxShort, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Ping(ctxShort).Err(); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	s.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
}

func TestAOFSurvivesRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []redistest.Option
		down func(*redistest.Server)
	}{
		// A clean shutdown flushes the AOF.
		{"stop", []redistest.Option{redistest.WithAOF()}, (*redistest.Server).Stop},
		// A crash keeps what was fsynced; with fsync always that is every write.
		{"kill", []redistest.Option{redistest.WithAOF(), redistest.WithArgs("--appendfsync", "always")}, (*redistest.Server).Kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := redistest.Start(t, tt.opts...)
			c := s.Client()
			if err := c.Set(ctx, "durable", "yes", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			addr := s.Addr()
			tt.down(s)
			s.Restart(t)
			if s.Addr() != addr {
				t.Errorf("Restart moved the server from %s to %s", addr, s.Addr())
			}
			got, err := c.Get(ctx, "durable").Result()
			if err != nil || got != "yes" {
				t.Fatalf("GET after restart = %q, %v; want yes", got, err)
			}
		})
	}
}
