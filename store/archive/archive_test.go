package archive_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/store/archive"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.StopShared()
	os.Exit(code)
}

// TestSQLite runs the archive suite on a SQLite file per test.
func TestSQLite(t *testing.T) {
	t.Parallel()
	runSuite(t, func(t *testing.T) *archive.Store {
		// A directory that does not exist yet: Open creates it.
		return openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "nested", "archive.db"))
	})
}

// TestMariaDB runs the archive suite on a real MariaDB server (shared by the
// test binary), a fresh database per test.
func TestMariaDB(t *testing.T) {
	t.Parallel()
	mysqltest.Shared(t) // skip or fail here, once, when there is no server
	runSuite(t, func(t *testing.T) *archive.Store {
		return openStore(t, mysqltest.NewDatabase(t))
	})
}

func openStore(t *testing.T, dsn string) *archive.Store {
	t.Helper()
	s, err := archive.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open(%s): %v", archive.RedactDSN(dsn), err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
