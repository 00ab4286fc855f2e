package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cassata/cassata/store/archive"
)

func TestMigrateCommand(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "")
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "sub", "archive.db")
	for i := range 2 { // twice: migrating an up-to-date archive is a no-op
		if code := run([]string{"migrate", "--archive-dsn", dsn}); code != 0 {
			t.Fatalf("run %d: cassata migrate exited %d", i, code)
		}
	}
	a, err := archive.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	v, err := a.SchemaVersion(context.Background())
	if err != nil || v < 1 {
		t.Fatalf("schema version = %d, %v; want migrated", v, err)
	}
}

func TestMigrateNeedsDSN(t *testing.T) {
	t.Setenv("CASSATA_ARCHIVE_DSN", "")
	if code := run([]string{"migrate"}); code == 0 {
		t.Fatal("cassata migrate without a DSN succeeded")
	}
}

func TestWorkerNeedsArchive(t *testing.T) {
	t.Setenv("CASSATA_ARCHIVE_DSN", "")
	t.Setenv("CASSATA_REDIS_URL", "redis://127.0.0.1:1/0")
	if code := run([]string{"worker", "--listen", "127.0.0.1:0"}); code == 0 {
		t.Fatal("cassata worker without an archive DSN started")
	}
}
