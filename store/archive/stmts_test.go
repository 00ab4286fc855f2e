package archive

import (
	"strings"
	"testing"
)

func TestChunkRowsIsAPowerOfTwoThatFits(t *testing.T) {
	t.Parallel()
	tests := []struct{ n, want int }{
		{0, 0}, {1, 1}, {2, 2}, {3, 2}, {7, 4}, {8, 8}, {200, 128},
		{maxChunkRows - 1, maxChunkRows / 2}, {maxChunkRows, maxChunkRows}, {maxChunkRows + 1, maxChunkRows}, {5000, maxChunkRows},
	}
	for _, tc := range tests {
		if got := chunkRows(tc.n); got != tc.want {
			t.Errorf("chunkRows(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestMultiInsertSQLHasOneGroupPerRow(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{DialectMySQL, DialectSQLite} {
		q := queriesFor(dialect)
		for _, id := range []int{eventsInsert, attemptsInsert} {
			m := q.multiInsert(id)
			for _, rows := range []int{1, 4, 256} {
				sql := m.sql(rows)
				if got := strings.Count(sql, "?"); got != rows*m.cols {
					t.Errorf("%s statement %d, %d rows: %d placeholders, want %d", dialect, id, rows, got, rows*m.cols)
				}
				if !strings.HasPrefix(sql, m.head) || !strings.HasSuffix(sql, m.tail) {
					t.Errorf("%s statement %d: head or tail missing", dialect, id)
				}
			}
		}
	}
}
