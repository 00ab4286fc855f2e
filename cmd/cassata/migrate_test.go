package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
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

// TestMigrateCompactEvents: --compact-events switches a namespace made
// with event hashes, or one made with compact events and an outbox entry
// per event, to this release's layout (redisstore's layout 4: compact
// events, packed outbox entries, header codes), once; it needs Redis.
func TestMigrateCompactEvents(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	old, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: "legacy", EventLayout: 1})
	if err != nil || old.EventLayout() != 1 {
		t.Fatalf("a namespace of hashes: layout %d, %v", old.EventLayout(), err)
	}
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "archive.db")
	t.Setenv("CASSATA_REDIS_URL", "")
	if code := run([]string{"migrate", "--archive-dsn", dsn, "--compact-events"}); code == 0 {
		t.Fatal("migrate --compact-events without Redis succeeded")
	}
	t.Setenv("CASSATA_REDIS_URL", "redis://"+mr.Addr()+"/0")
	t.Setenv("CASSATA_NAMESPACE", "legacy")
	if code := run([]string{"migrate", "--archive-dsn", dsn}); code != 0 {
		t.Fatalf("cassata migrate exited %d", code)
	}
	if st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: "legacy"}); err != nil || st.EventLayout() != 1 {
		t.Fatalf("after a plain migrate: layout %d, %v; want hashes still", st.EventLayout(), err)
	}
	for i := range 2 { // twice: the second finds it switched
		if code := run([]string{"migrate", "--archive-dsn", dsn, "--compact-events"}); code != 0 {
			t.Fatalf("run %d: cassata migrate --compact-events exited %d", i, code)
		}
	}
	if st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: "legacy"}); err != nil || st.EventLayout() != 4 {
		t.Fatalf("after migrate --compact-events: layout %d, %v; want 4 (compact, packed, header codes)", st.EventLayout(), err)
	}
	// Namespaces made with compact events and an entry per event (layout
	// 2), and with packed entries (3, the release before header codes).
	for ns, layout := range map[string]int{"round6": 2, "round10": 3} {
		if _, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: ns, EventLayout: layout}); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CASSATA_NAMESPACE", ns)
		if code := run([]string{"migrate", "--archive-dsn", dsn, "--compact-events"}); code != 0 {
			t.Fatalf("%s: cassata migrate --compact-events exited %d", ns, code)
		}
		if st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: ns}); err != nil || st.EventLayout() != 4 {
			t.Fatalf("a namespace of layout %d after migrate --compact-events: layout %d, %v; want 4", layout, st.EventLayout(), err)
		}
	}
}
