package legacy

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
)

// Ledger states (legacy_imports.state).
const (
	// stateCreating: a live create is under way (write-ahead).
	stateCreating = "creating"
	// stateLive: the row became a live event.
	stateLive = "live"
	// stateArchived: the row became an archived run.
	stateArchived = "archived"
)

// ledger is the import's record of what it brought over, in the archive
// database's legacy_imports table (see doc.go).
type ledger struct {
	db *sql.DB
	q  ledgerQueries
}

// ledgerEntry is one identity to record.
type ledgerEntry struct {
	ident        scheduler.Ident
	sourceID     int64
	sourceStatus string
	state        string
	atMS         int64
}

func newLedger(a *archive.Store) *ledger {
	l := &ledger{db: a.DB()}
	if a.Dialect() == archive.DialectMySQL {
		l.q = ledgerQueries{exists: mysqlLedgerExists, intentTail: mysqlIntentTail, doneTail: mysqlDoneTail}
	} else {
		l.q = ledgerQueries{exists: sqliteLedgerExists, intentTail: sqliteIntentTail, doneTail: sqliteDoneTail}
	}
	return l
}

// exists reports whether the ledger table is there (the archive was
// migrated since it was added); a dry run reads it only then.
func (l *ledger) exists(ctx context.Context) (bool, error) {
	var n int
	if err := l.db.QueryRowContext(ctx, l.q.exists).Scan(&n); err != nil {
		return false, fmt.Errorf("import ledger: %w", err)
	}
	return n > 0, nil
}

// lookup returns the recorded state of each identity the ledger has.
func (l *ledger) lookup(ctx context.Context, ids []scheduler.Ident) (map[scheduler.Ident]string, error) {
	out := make(map[scheduler.Ident]string, len(ids))
	for app, evIDs := range byApp(ids) {
		q := selectLedgerHead + placeholders(len(evIDs)) + selectLedgerTail
		args := make([]any, 0, len(evIDs)+1)
		args = append(args, app)
		for _, id := range evIDs {
			args = append(args, id)
		}
		rows, err := l.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("import ledger: lookup: %w", err)
		}
		for rows.Next() {
			var id, state string
			if err := rows.Scan(&id, &state); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("import ledger: lookup: %w", err)
			}
			out[scheduler.Ident{App: app, ID: id}] = state
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return nil, fmt.Errorf("import ledger: lookup: %w", err)
		}
	}
	return out, nil
}

// intend records that the entries' creates are about to run; an identity
// the ledger has already keeps its entry.
func (l *ledger) intend(ctx context.Context, entries []ledgerEntry) error {
	return l.insert(ctx, l.q.intentTail, entries)
}

// record stores the entries' outcomes (live or archived), replacing intents.
func (l *ledger) record(ctx context.Context, entries []ledgerEntry) error {
	return l.insert(ctx, l.q.doneTail, entries)
}

func (l *ledger) insert(ctx context.Context, tail string, entries []ledgerEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(insertLedger)
	args := make([]any, 0, 6*len(entries))
	for i, e := range entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ledgerGroup)
		args = append(args, e.ident.App, e.ident.ID, e.sourceID, e.sourceStatus, e.state, e.atMS)
	}
	b.WriteString(tail)
	if _, err := l.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("import ledger: record: %w", err)
	}
	return nil
}

// forget removes the intents of identities whose create was refused.
func (l *ledger) forget(ctx context.Context, ids []scheduler.Ident) error {
	for app, evIDs := range byApp(ids) {
		args := make([]any, 0, len(evIDs)+1)
		args = append(args, app)
		for _, id := range evIDs {
			args = append(args, id)
		}
		q := deleteIntentsHead + placeholders(len(evIDs)) + deleteIntentsTail
		if _, err := l.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("import ledger: forget: %w", err)
		}
	}
	return nil
}

func byApp(ids []scheduler.Ident) map[string][]string {
	m := map[string][]string{}
	for _, id := range ids {
		m[id.App] = append(m[id.App], id.ID)
	}
	return m
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
