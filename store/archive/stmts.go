package archive

import (
	"context"
	"database/sql"
	"math/bits"
	"strings"
	"sync"
)

// Write's multi-row statements are prepared once and reused: parsing and
// planning a 256-row upsert cost SQLite as much as a sixth of executing it.
// To keep the number of distinct statements small, a statement carries a
// power of two of rows (1, 2, 4, ... maxChunkRows): a run of n rows is
// written as its binary decomposition, e.g. 200 = 128 + 64 + 8, at most
// log2(maxChunkRows)+1 statements per table and batch beyond the full ones.
//
//	table × size → *sql.Stmt   (database/sql prepares it once per connection)
const maxChunkRows = 256

// multiInsert is one of Write's multi-row statements: head, one "(?, ...)"
// group per row, tail.
type multiInsert struct {
	id         int // index in stmtCache.byRows
	head, tail string
	cols       int
}

// The multi-row statements of Write.
const (
	eventsInsert = iota
	createsInsert
	attemptsInsert
	numMultiInserts
)

func (q *queries) multiInsert(id int) multiInsert {
	switch id {
	case eventsInsert:
		return multiInsert{id: id, head: upsertEventsHead, tail: q.upsertEventsTail, cols: numEventColumns}
	case createsInsert:
		return multiInsert{id: id, head: upsertCreatesHead, tail: q.upsertEventsTail, cols: numCreateColumns}
	default:
		return multiInsert{id: id, head: insertAttemptsHead, tail: q.insertAttemptsTail, cols: numAttemptColumns}
	}
}

// sql is the statement text for rows rows.
func (m multiInsert) sql(rows int) string {
	group := "(" + strings.Repeat("?, ", m.cols-1) + "?)"
	var b strings.Builder
	b.Grow(len(m.head) + len(m.tail) + rows*(len(group)+2))
	b.WriteString(m.head)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(group)
	}
	b.WriteString(m.tail)
	return b.String()
}

// chunkRows is the row count of the next statement: the largest power of
// two that is at most n (rows that fit in a statement) and maxChunkRows.
func chunkRows(n int) int {
	n = min(n, maxChunkRows)
	if n <= 0 {
		return 0
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// stmtCache holds the prepared statements of Write, by statement and row
// count (log2). A statement that fails to prepare is not kept, so the next
// Write tries again.
type stmtCache struct {
	mu     sync.Mutex
	byRows [numMultiInserts][bits.UintSize]*sql.Stmt
}

// get returns the prepared statement of m for rows rows (a power of two),
// preparing it on first use.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, m multiInsert, rows int) (*sql.Stmt, error) {
	slot := bits.Len(uint(rows)) - 1
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.byRows[m.id][slot]; st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, m.sql(rows))
	if err != nil {
		return nil, err
	}
	c.byRows[m.id][slot] = st
	return st, nil
}

// close closes every prepared statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.byRows {
		for j, st := range c.byRows[i] {
			if st != nil {
				_ = st.Close()
				c.byRows[i][j] = nil
			}
		}
	}
}
