package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
)

// checkNamesField fails unless err is one error that names field.
func checkNamesField(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %s", field)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name %s", err, field)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want only the error about %s", err, field)
	}
}

// TestConfigValidate: the zero Config with its defaults is valid, and each
// invalid field is reported by name, alone, so an operator knows which
// setting to fix.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (worker.Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("the zero Config with defaults: %v", err)
	}
	for _, tc := range []struct {
		name, field string
		mod         func(*worker.Config)
	}{
		{"Concurrency=0", "Concurrency", func(c *worker.Config) { c.Concurrency = 0 }},
		{"Concurrency=worker.MaxConcurrency+1", "Concurrency", func(c *worker.Config) { c.Concurrency = worker.MaxConcurrency + 1 }},
		{"Batch=0", "Batch", func(c *worker.Config) { c.Batch = 0 }},
		{"Batch=MaxBatch+1", "Batch", func(c *worker.Config) { c.Batch = worker.MaxBatch + 1 }},
		{"Visibility=worker.MinVisibility-time.Millisecond", "Visibility", func(c *worker.Config) { c.Visibility = worker.MinVisibility - time.Millisecond }},
		{"PollInterval=0", "PollInterval", func(c *worker.Config) { c.PollInterval = 0 }},
		{"ReapInterval=-time.Second", "ReapInterval", func(c *worker.Config) { c.ReapInterval = -time.Second }},
		{"HeartbeatInterval=0", "HeartbeatInterval", func(c *worker.Config) { c.HeartbeatInterval = 0 }},
		{"ShutdownTimeout=0", "ShutdownTimeout", func(c *worker.Config) { c.ShutdownTimeout = 0 }},
		{"OrphanInterval=0", "OrphanInterval", func(c *worker.Config) { c.OrphanInterval = 0 }},
		{"DeadAfter=2*HeartbeatInterval-time.Millisecond", "DeadAfter", func(c *worker.Config) { c.DeadAfter = 2*c.HeartbeatInterval - time.Millisecond }},
		{"Policy.MaxAttempts=0", "Policy", func(c *worker.Config) { c.Policy.MaxAttempts = 0 }},
		{"Policy.Timeout=-time.Second", "Policy", func(c *worker.Config) { c.Policy.Timeout = -time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := worker.Config{}.WithDefaults()
			tc.mod(&c)
			checkNamesField(t, c.Validate(), tc.field)
		})
	}
}

// TestWorkerRunRejectsAnInvalidConfig: Run returns at once with the error
// naming the invalid field instead of running with it.
func TestWorkerRunRejectsAnInvalidConfig(t *testing.T) {
	t.Parallel()
	w := worker.New(nil, delivery.New(delivery.Config{}), worker.Config{Visibility: time.Millisecond})
	checkNamesField(t, w.Run(context.Background()), "Visibility")
}

// TestArchiverConfigValidate: with a Consumer, the zero ArchiverConfig with
// its defaults is valid (without one, Consumer is the only error), and
// each invalid field is reported by name.
func TestArchiverConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (worker.ArchiverConfig{Consumer: "w1"}).WithDefaults().Validate(); err != nil {
		t.Fatalf("the zero ArchiverConfig with a Consumer and defaults: %v", err)
	}
	// Without a hold, a long poll interval is fine.
	if err := (worker.ArchiverConfig{Consumer: "w1", HoldCreates: -1, PollInterval: 5 * time.Second}).WithDefaults().Validate(); err != nil {
		t.Fatalf("no hold, PollInterval 5s: %v", err)
	}
	checkNamesField(t, worker.ArchiverConfig{}.WithDefaults().Validate(), "Consumer")
	for _, tc := range []struct {
		name, field string
		mod         func(*worker.ArchiverConfig)
	}{
		{"Consumer=empty", "Consumer", func(c *worker.ArchiverConfig) { c.Consumer = "" }},
		{"Batch=0", "Batch", func(c *worker.ArchiverConfig) { c.Batch = 0 }},
		{"Batch=MaxArchiveBatch+1", "Batch", func(c *worker.ArchiverConfig) { c.Batch = worker.MaxArchiveBatch + 1 }},
		{"PollInterval=0", "PollInterval", func(c *worker.ArchiverConfig) { c.PollInterval = 0 }},
		{"ClaimIdle=-time.Second", "ClaimIdle", func(c *worker.ArchiverConfig) { c.ClaimIdle = -time.Second }},
		// Search must see a create within 2 s: the hold plus the sleep
		// between rounds is bounded.
		{"HoldCreates=1.4s", "HoldCreates", func(c *worker.ArchiverConfig) { c.HoldCreates = 1400 * time.Millisecond }},
		{"HoldCreates=default,PollInterval=1s", "HoldCreates", func(c *worker.ArchiverConfig) { c.PollInterval = time.Second }},
		{"HoldCreates=1s,FillWait=600ms", "HoldCreates", func(c *worker.ArchiverConfig) { c.FillWait = 600 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := worker.ArchiverConfig{Consumer: "w1"}.WithDefaults()
			tc.mod(&c)
			checkNamesField(t, c.Validate(), tc.field)
		})
	}
}

// TestArchiverRunRejectsAnInvalidConfig: Run returns at once with the
// error naming the missing Consumer.
func TestArchiverRunRejectsAnInvalidConfig(t *testing.T) {
	t.Parallel()
	a := worker.NewArchiver(nil, nil, worker.ArchiverConfig{})
	checkNamesField(t, a.Run(context.Background()), "Consumer")
}
