package archive

import "context"

// MigrateTo applies the migrations up to version, leaving the archive as an
// older release made it, so tests can upgrade it.
func (s *Store) MigrateTo(ctx context.Context, version int64) error {
	return s.migrate(ctx, version)
}
