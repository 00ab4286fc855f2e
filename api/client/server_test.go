package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/api/client"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/server"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/store/archive"
)

// adminToken is CASSATA_ADMIN_TOKEN of the servers the tests start.
const adminToken = "client-test-admin-token"

// system is a real Cassata (internal/server.Run in dev mode, in process:
// API, worker and archiver, as `cassata dev` with CASSATA_REDIS_URL) on a
// loopback port over a real redis-server, with authentication on. The
// worker and archiver are what search reads from.
type system struct {
	// base is the server's URL.
	base string
}

type serverOpts struct {
	// rateLimit is CASSATA_RATE_LIMIT (0: the default).
	rateLimit int
}

// startServer starts a server for the test; it stops when the test ends.
func startServer(t *testing.T, o serverOpts) *system {
	t.Helper()
	rs := redistest.Start(t)
	cfg := config.Defaults(server.ModeDev)
	cfg.RedisURL = rs.URL()
	cfg.AdminToken = adminToken
	cfg.Auth = "on"
	cfg.BlockPrivate = "off"
	// Search and bulk retry need the archive (as `cassata migrate` makes it).
	cfg.ArchiveDSN = "sqlite://" + filepath.Join(t.TempDir(), "archive.db")
	arch, err := archive.Open(t.Context(), cfg.ArchiveDSN)
	if err != nil {
		t.Fatalf("archive.Open: %v", err)
	}
	if err := arch.Migrate(t.Context()); err != nil {
		t.Fatalf("archive.Migrate: %v", err)
	}
	_ = arch.Close()
	if o.rateLimit > 0 {
		cfg.RateLimit = o.rateLimit
	}
	log := slog.New(slog.DiscardHandler)
	var base string
	err = testproc.OnFreePort(func(port int) error {
		cfg.Listen = testproc.LoopbackAddr(port)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- server.Run(ctx, server.ModeDev, cfg, log) }()
		url := "http://" + cfg.Listen
		deadline := time.Now().Add(30 * time.Second)
		for {
			select {
			case err := <-done:
				cancel()
				if err != nil && strings.Contains(err.Error(), "address already in use") {
					return testproc.ErrAddrInUse
				}
				return err
			default:
			}
			resp, err := http.Get(url + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					base = url
					t.Cleanup(func() {
						cancel()
						if err := <-done; err != nil {
							t.Errorf("server.Run: %v", err)
						}
					})
					return nil
				}
			}
			if time.Now().After(deadline) {
				cancel()
				<-done
				return errors.New("server not ready within 30s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return &system{base: base}
}

// admin is a client with the admin token.
func (s *system) admin(opts ...client.Option) *client.Client {
	return client.New(s.base, append([]client.Option{client.WithBearerToken(adminToken)}, opts...)...)
}

// newApp registers an application and returns its API key.
func (s *system) newApp(t *testing.T, name string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/apps", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create app %s: %v", name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var cr struct {
		APIKey string `json:"api_key"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &cr) != nil || cr.APIKey == "" {
		t.Fatalf("create app %s: %d %s", name, resp.StatusCode, raw)
	}
	return cr.APIKey
}

// wantError checks that err is a *client.Error with status, code and field
// (code and field: "" means any).
func wantError(t *testing.T, what string, err error, status int, code, field string) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: err = %v (%T), want a *client.Error %d", what, err, err, status)
	}
	if ce.Status != status || code != "" && ce.Code != code || field != "" && ce.Field != field {
		t.Fatalf("%s: err = %+v, want status %d code %q field %q", what, ce, status, code, field)
	}
	if ce.Message == "" {
		t.Errorf("%s: error without a message: %+v", what, ce)
	}
	return ce
}

// eventually retries f until it returns nil or 30s pass (search sees a
// change within 2 s, on a loaded machine later).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
