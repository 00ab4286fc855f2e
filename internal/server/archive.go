package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// devArchiveDSN is dev mode's archive: a SQLite file in the working
// directory, so the archive survives restarts.
func devArchiveDSN() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return "sqlite://" + filepath.Join(wd, "cassata-dev.db"), nil
}

// openArchive opens the archive named by the DSN; an empty DSN means none.
func openArchive(ctx context.Context, dsn string, log *slog.Logger) (*archive.Store, error) {
	if dsn == "" {
		return nil, nil
	}
	a, err := archive.Open(ctx, dsn)
	if err != nil {
		return nil, err // names the (redacted) DSN already
	}
	log.Info("archive", "dsn", archive.RedactDSN(dsn))
	return a, nil
}

// migrateWhenReachable creates or upgrades the archive tables under the
// namespace's migration lock, retrying until the database answers, then
// calls ready. Workers deliver meanwhile: the outbox keeps what finishes.
func migrateWhenReachable(ctx context.Context, store *redisstore.Store, a *archive.Store, createTables bool, log *slog.Logger, ready func()) {
	delay := time.Second
	for ctx.Err() == nil {
		err := a.Ping(ctx)
		if err == nil && createTables {
			err = store.WithLock(ctx, "migrate", time.Minute, a.Migrate)
		}
		if err == nil {
			ready()
			return
		}
		log.Warn("archive not ready; delivering anyway, finished events wait in the outbox", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// MigrateOptions are the flags of `cassata migrate`.
type MigrateOptions struct {
	// CompactEvents switches the namespace to this release's Redis
	// layout: compact events, packed outbox entries, header codes
	// (redisstore.Store.UseCompactEvents).
	CompactEvents bool
}

// Migrate is `cassata migrate`: create or upgrade the archive tables,
// under the namespace's migration lock when Redis is configured, and,
// with CompactEvents, switch the namespace to compact events.
func Migrate(ctx context.Context, cfg config.Config, log *slog.Logger, opts MigrateOptions) error {
	cfg.LogWarnings(log)
	if cfg.ArchiveDSN == "" {
		return fmt.Errorf("CASSATA_ARCHIVE_DSN (or --archive-dsn) is required for migrate")
	}
	if opts.CompactEvents && cfg.RedisURL == "" {
		return fmt.Errorf("CASSATA_REDIS_URL (or --redis-url) is required for migrate --compact-events")
	}
	a, err := openArchive(ctx, cfg.ArchiveDSN, log)
	if err != nil {
		return err
	}
	defer a.Close()
	mctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if cfg.RedisURL != "" {
		// With Redis at hand, take the same lock as the workers.
		rdb, err := redisstore.Dial(cfg.RedisConn())
		if err != nil {
			return err
		}
		defer rdb.Close()
		store, err := redisstore.New(mctx, rdb, redisstore.Config{Namespace: cfg.Namespace, Shards: cfg.Shards})
		if err != nil {
			return err
		}
		err = store.WithLock(mctx, "migrate", time.Minute, a.Migrate)
		if err != nil {
			return err
		}
		log.Info("archive tables are up to date")
		if opts.CompactEvents {
			switched, err := store.UseCompactEvents(mctx)
			if err != nil {
				return err
			}
			if switched {
				log.Info("the namespace's new events are stored compactly, and its batches' outbox entries packed, from now on; "+
					"what was stored before stays as it is", "namespace", cfg.Namespace)
			} else {
				log.Info("the namespace has this release's layout already", "namespace", cfg.Namespace)
			}
		}
		return nil
	}
	if err := a.Migrate(mctx); err != nil {
		return err
	}
	log.Info("archive tables are up to date")
	return nil
}

// archiveLag reports the outbox lag for /readyz. /readyz is public: an
// error is only "unavailable" there (the redis check logs why).
func archiveLag(ctx context.Context, o scheduler.Store) map[string]any {
	n, oldest, err := o.OutboxLag(ctx)
	if err != nil {
		return map[string]any{"status": "unavailable"}
	}
	lag := 0.0
	if !oldest.IsZero() {
		lag = time.Since(oldest).Seconds()
	}
	return map[string]any{"entries": n, "lag_seconds": lag}
}
