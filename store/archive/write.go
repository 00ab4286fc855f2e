package archive

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/cassata/cassata/scheduler"
)

// Size limits of what Write stores.
const (
	// MaxTextBytes bounds error messages and response snippets (TEXT
	// columns hold 64 KiB in MySQL); longer ones are cut at a rune boundary.
	MaxTextBytes = 16 << 10
	// maxStatementBytes bounds the values of one multi-row statement, well
	// under MariaDB's default max_allowed_packet (16 MiB), so batches of
	// events with large bodies are split into several statements.
	maxStatementBytes = 4 << 20
)

// Write stores a batch of outbox records in one transaction, idempotently:
// the same records written again, in any grouping, leave the same rows.
// The records of one run are applied in UpdatedMS order (stable for equal
// times); the merge rules are in the package documentation. A deadlock
// with a concurrent writer is retried. A record without App, ID,
// CreatedMS or a status is refused (ErrInvalid) and nothing is written.
func (s *Store) Write(ctx context.Context, records []scheduler.Record) error {
	if len(records) == 0 {
		return nil
	}
	// Sorted by run, then UpdatedMS: the records of one run apply in time
	// order, and every transaction locks rows in key order, which keeps
	// concurrent batches from deadlocking on each other.
	sorted := slices.Clone(records)
	slices.SortStableFunc(sorted, func(a, b scheduler.Record) int {
		return cmp.Or(
			strings.Compare(a.App, b.App),
			strings.Compare(a.ID, b.ID),
			cmp.Compare(a.CreatedMS, b.CreatedMS),
			cmp.Compare(a.UpdatedMS, b.UpdatedMS),
		)
	})

	events := make([]eventRow, 0, len(sorted))
	attempts := make([]attemptRow, 0, len(sorted))
	for i := range sorted {
		r := &sorted[i]
		if err := checkRecord(r); err != nil {
			return err
		}
		if r.Attempt != nil {
			attempts = append(attempts, newAttemptRow(r))
		}
		if ev, ok := newEventRow(r); ok {
			events = append(events, ev)
		}
	}

	events, creates := splitCreates(coalesce(events))

	for try := 1; ; try++ {
		err := s.write(ctx, events, creates, attempts)
		if err == nil || try == maxWriteTries || !retryable(err) {
			return err
		}
		// InnoDB can still pick a victim when two batches upsert the same
		// runs (duplicate-key checks take shared locks); back off a little.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try*try) * time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

// maxWriteTries bounds how often Write runs a transaction that the database
// aborted to break a deadlock (two archivers writing the same runs at once,
// e.g. after a takeover of pending entries).
const maxWriteTries = 6

// retryable reports a MySQL deadlock (1213) or lock wait timeout (1205):
// the transaction was rolled back and can simply run again.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

func (s *Store) write(ctx context.Context, events []eventRow, creates []createRow, attempts []attemptRow) error {
	// READ COMMITTED on MySQL: the upserts then lock only the rows they
	// touch, not the gaps between them, so concurrent batches of different
	// runs do not deadlock on each other's inserts.
	var opts *sql.TxOptions
	if s.dialect == DialectMySQL {
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("archive write: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	// Events first, then attempts, in every batch, so two batches never
	// lock the two tables in opposite orders. The events go in two
	// statements (the rows that tell more than a create, then the creates),
	// each in key order; two archivers writing the same runs at once (a
	// takeover) can still deadlock on MySQL, which Write retries.
	args := make([]any, 0, maxChunkRows*numEventColumns)
	if err := execChunked(ctx, s, tx, s.q.multiInsert(eventsInsert), events, args); err != nil {
		return fmt.Errorf("archive write: events: %w", err)
	}
	if err := execChunked(ctx, s, tx, s.q.multiInsert(createsInsert), creates, args); err != nil {
		return fmt.Errorf("archive write: events: %w", err)
	}
	if err := execChunked(ctx, s, tx, s.q.multiInsert(attemptsInsert), attempts, args); err != nil {
		return fmt.Errorf("archive write: attempts: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("archive write: commit: %w", err)
	}
	return nil
}

func checkRecord(r *scheduler.Record) error {
	switch {
	case r.App == "":
		return &scheduler.ValidationError{Field: "app", Message: fmt.Sprintf("record %s (%s): empty app", r.StreamID, r.Kind)}
	case r.ID == "":
		return &scheduler.ValidationError{Field: "id", Message: fmt.Sprintf("record %s (%s): empty event id", r.StreamID, r.Kind)}
	case r.CreatedMS <= 0:
		return &scheduler.ValidationError{Field: "created_ms", Message: fmt.Sprintf("record %s (%s) for %s/%s: no creation time", r.StreamID, r.Kind, r.App, r.ID)}
	case recordStatus(r) == "":
		return &scheduler.ValidationError{Field: "status", Message: fmt.Sprintf("record %s (%s) for %s/%s: no status", r.StreamID, r.Kind, r.App, r.ID)}
	}
	return nil
}

func recordStatus(r *scheduler.Record) scheduler.Status {
	if r.Status == "" && r.Event != nil {
		return r.Event.Status
	}
	return r.Status
}

// row is a statement's worth of values for one table row (a pointer to an
// eventRow or attemptRow).
type row[R any] interface {
	*R
	// appendArgs appends the row's values, in column order, to args.
	appendArgs(args []any, b *boxes) []any
	size() int
}

// execChunked runs m over rows with prepared statements of a power of two
// of rows each (stmts.go), as many rows per statement as maxChunkRows, the
// placeholder limit and maxStatementBytes allow. args is scratch space.
func execChunked[R any, P row[R]](ctx context.Context, s *Store, tx *sql.Tx, m multiInsert, rows []R, args []any) error {
	perStmt := s.q.maxParams / m.cols
	var b boxes
	for len(rows) > 0 {
		n, bytes := 0, 0
		for n < len(rows) && n < perStmt && n < maxChunkRows {
			sz := P(&rows[n]).size()
			if n > 0 && bytes+sz > maxStatementBytes {
				break
			}
			bytes += sz
			n++
		}
		n = chunkRows(n)
		st, err := s.stmts.get(ctx, s.db, m, n)
		if err != nil {
			return err
		}
		args = args[:0]
		for i := range rows[:n] {
			args = P(&rows[i]).appendArgs(args, &b)
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// eventRow holds one record's values for the events upsert. An opt that is
// not set (and a nil body) is NULL: "this record does not tell", and the
// upsert keeps what the row has. Values, not pointers: a batch builds
// hundreds of rows, and a pointer per column was an allocation each.
type eventRow struct {
	app, id        string
	createdMS      int64
	url, method    opt[string]
	headers        opt[string]
	body           []byte // nil: NULL
	dueMS          opt[int64]
	status         string
	attempts       opt[int64]
	maxAttempts    opt[int64]
	timeoutMS      opt[int64]
	minBackoffMS   opt[int64]
	maxBackoffMS   opt[int64]
	lastStatusCode opt[int64]
	lastError      opt[string]
	worker         opt[string]
	finishedMS     opt[int64]
	updatedMS      int64
	flowKey        opt[string]
}

// opt is a column value a record may or may not tell; the zero opt tells
// nothing (NULL).
type opt[T any] struct {
	v  T
	ok bool
}

func some[T any](v T) opt[T] { return opt[T]{v: v, ok: true} }

// arg is the statement argument: the value, or nil (NULL).
func (o opt[T]) arg() any {
	if !o.ok {
		return nil
	}
	return o.v
}

// newEventRow maps a record to the values it tells about its run. Which
// columns a record sets depends on its kind (see doc.go). A stale attempt
// did not count and changes nothing on the run, so it has no event row.
func newEventRow(r *scheduler.Record) (eventRow, bool) {
	if r.Kind == scheduler.RecordAttempt && r.Attempt != nil && r.Attempt.Stale {
		return eventRow{}, false
	}
	status := recordStatus(r)
	row := eventRow{
		app:       r.App,
		id:        r.ID,
		createdMS: r.CreatedMS,
		status:    string(status),
		updatedMS: r.UpdatedMS,
	}
	if status.Final() {
		finished := r.UpdatedMS
		if r.Event != nil && !r.Event.FinishedAt.IsZero() {
			finished = r.Event.FinishedAt.UnixMilli()
		}
		row.finishedMS = some(finished)
	}
	if ev := r.Event; ev != nil {
		// What a run was asked to do never changes; empty means "not
		// carried" (a create has no body, an attempt no event).
		row.url = nonEmpty(ev.URL)
		row.method = nonEmpty(ev.Method)
		if len(ev.Headers) > 0 {
			row.headers = some(headersJSON(ev.Headers)) // always valid UTF-8
		}
		switch {
		case len(ev.Body) > 0:
			row.body = ev.Body
		case r.Kind == scheduler.RecordFinal && !ev.BodyDropped:
			// A final record knows the body, even an empty one: store it
			// as such (NULL would read as "not known").
			row.body = []byte{}
		}
		row.maxAttempts = positive(int64(ev.MaxAttempts))
		row.timeoutMS = positive(ev.Timeout.Milliseconds())
		row.minBackoffMS = positive(ev.MinBackoff.Milliseconds())
		row.maxBackoffMS = positive(ev.MaxBackoff.Milliseconds())
		if !ev.DueAt.IsZero() {
			row.dueMS = some(ev.DueAt.UnixMilli())
		}
		// The attempt count is the run's count after this change: 0 at
		// create, reset to 0 by a retry (requeue), final at the end. An
		// attempt record's event carries only the next due time; its count
		// is the attempt's (below).
		if r.Kind != scheduler.RecordAttempt {
			row.attempts = some(int64(ev.Attempts))
		}
		// Create and final records tell the flow key even when the run has
		// none (the create entry carries it only when set, the final one
		// is the whole hash): a pending occurrence replaced by a template
		// without a key keeps its run, and must lose the old key.
		if r.Kind == scheduler.RecordCreate || r.Kind == scheduler.RecordFinal {
			row.flowKey = some(ev.FlowKey)
		}
	}
	switch {
	case r.Kind == scheduler.RecordFinal && r.Event != nil:
		code, msg, worker := r.Event.LastStatusCode, r.Event.LastError, r.Event.Worker
		if a := r.Attempt; a != nil && code == 0 && msg == "" {
			code, msg = a.StatusCode, a.Error
			worker = cmp.Or(worker, a.Worker)
		}
		row.lastStatusCode = some(int64(code))
		row.lastError = some(truncateText(msg))
		row.worker = some(validUTF8(worker))
	case r.Attempt != nil:
		// An attempt record (or a final one without its event): the
		// attempt is the run's last outcome and its count.
		a := r.Attempt
		row.attempts = some(int64(a.Attempt))
		row.lastStatusCode = some(int64(a.StatusCode))
		row.lastError = some(truncateText(a.Error))
		row.worker = some(validUTF8(a.Worker))
	}
	return row, true
}

func (r *eventRow) appendArgs(args []any, b *boxes) []any {
	return append(args,
		b.app.of(r.app), r.id, r.createdMS, r.url.arg(), b.method.opt(r.method), r.headers.arg(), nullableBytes(r.body),
		r.dueMS.arg(), b.status.of(r.status), r.attempts.arg(), b.maxAttempts.opt(r.maxAttempts), b.timeout.opt(r.timeoutMS),
		b.minBackoff.opt(r.minBackoffMS), b.maxBackoff.opt(r.maxBackoffMS), b.code.opt(r.lastStatusCode), b.lastError.opt(r.lastError),
		b.worker.opt(r.worker), r.finishedMS.arg(), r.updatedMS, b.flowKey.opt(r.flowKey),
	)
}

func (r *eventRow) size() int {
	return 256 + len(r.body) + len(r.url.v) + len(r.headers.v) + len(r.lastError.v)
}

// createRow is an event row that tells only what a create record tells
// (createOnly): it is written with the narrow upsert (createColumns), which
// binds half the values. A create is most rows of a batch while clients
// create events ahead of their due times, and binding a NULL cost SQLite
// as much as a value (measured: BenchmarkWriteCreates).
type createRow eventRow

// createOnly reports whether the row sets no column beyond createColumns.
func (r *eventRow) createOnly() bool {
	return !r.headers.ok && r.body == nil && !r.maxAttempts.ok && !r.timeoutMS.ok && !r.minBackoffMS.ok &&
		!r.maxBackoffMS.ok && !r.lastStatusCode.ok && !r.lastError.ok && !r.worker.ok && !r.finishedMS.ok
}

// splitCreates moves the rows that tell only what a create tells out of
// rows, keeping the order of both.
func splitCreates(rows []eventRow) ([]eventRow, []createRow) {
	n := 0
	for i := range rows {
		if rows[i].createOnly() {
			n++
		}
	}
	if n == 0 {
		return rows, nil
	}
	creates := make([]createRow, 0, n)
	out := rows[:0]
	for _, r := range rows {
		if r.createOnly() {
			creates = append(creates, createRow(r))
			continue
		}
		out = append(out, r)
	}
	return out, creates
}

func (r *createRow) appendArgs(args []any, b *boxes) []any {
	return append(args,
		b.app.of(r.app), r.id, r.createdMS, r.url.arg(), b.method.opt(r.method), r.dueMS.arg(), b.status.of(r.status),
		r.attempts.arg(), r.updatedMS, b.flowKey.opt(r.flowKey),
	)
}

func (r *createRow) size() int { return 128 + len(r.url.v) }

// coalesce merges the rows of one run into one, by the upsert's own rule
// (doc.go), so that a batch holding a run's create and its final outcome
// (the usual case for a prompt delivery) writes one row rather than
// upserting the same row twice. rows are sorted by run, then UpdatedMS.
func coalesce(rows []eventRow) []eventRow {
	out := rows[:0]
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].app == r.app && out[n-1].id == r.id && out[n-1].createdMS == r.createdMS {
			out[n-1] = out[n-1].then(r)
			continue
		}
		out = append(out, r)
	}
	return out
}

// then is row r followed by the record row next, at least as new: each
// nullable column takes next's value when it tells one; status and
// finished_ms are next's; updated_ms the newer.
func (r eventRow) then(next eventRow) eventRow {
	m := next
	m.url, m.method, m.headers = told(r.url, next.url), told(r.method, next.method), told(r.headers, next.headers)
	if m.body == nil {
		m.body = r.body
	}
	m.dueMS, m.attempts, m.maxAttempts = told(r.dueMS, next.dueMS), told(r.attempts, next.attempts), told(r.maxAttempts, next.maxAttempts)
	m.timeoutMS, m.minBackoffMS, m.maxBackoffMS = told(r.timeoutMS, next.timeoutMS), told(r.minBackoffMS, next.minBackoffMS), told(r.maxBackoffMS, next.maxBackoffMS)
	m.lastStatusCode, m.lastError, m.worker = told(r.lastStatusCode, next.lastStatusCode), told(r.lastError, next.lastError), told(r.worker, next.worker)
	m.flowKey = told(r.flowKey, next.flowKey)
	m.updatedMS = max(r.updatedMS, next.updatedMS)
	return m
}

// told is the newer record's value when it tells one, else the older's.
func told[T any](older, newer opt[T]) opt[T] {
	if newer.ok {
		return newer
	}
	return older
}

// attemptRow is one row of the attempts table.
type attemptRow struct {
	app, id    string
	createdMS  int64
	attempt    int64
	atMS       int64
	durationMS int64
	statusCode int64
	err        string
	response   string
	worker     string
	stale      bool
}

func newAttemptRow(r *scheduler.Record) attemptRow {
	a := r.Attempt
	at := a.At
	if at == 0 {
		at = r.UpdatedMS
	}
	return attemptRow{
		app:        r.App,
		id:         r.ID,
		createdMS:  r.CreatedMS,
		attempt:    int64(a.Attempt),
		atMS:       at,
		durationMS: a.DurationMS,
		statusCode: int64(a.StatusCode),
		err:        truncateText(a.Error),
		response:   truncateText(a.Response),
		worker:     validUTF8(a.Worker),
		stale:      a.Stale,
	}
}

func (r *attemptRow) appendArgs(args []any, b *boxes) []any {
	return append(args, b.app.of(r.app), r.id, r.createdMS, r.attempt, r.atMS, r.durationMS, b.code.of(r.statusCode),
		b.lastError.of(r.err), b.response.of(r.response), b.worker.of(r.worker), r.stale)
}

// boxes keeps the interface value of columns whose values repeat from row
// to row (app, status, worker, the retry policy, the outcome): converting a
// string or an int64 above 255 to an argument allocates, and a batch repeats
// them hundreds of times.
type boxes struct {
	app, method, status, lastError, worker, flowKey, response box[string]
	maxAttempts, timeout, minBackoff, maxBackoff, code        box[int64]
}

// box is the argument of the last value it was asked for.
type box[T comparable] struct {
	v   T
	arg any
}

func (b *box[T]) of(v T) any {
	if b.arg == nil || b.v != v {
		b.v, b.arg = v, v
	}
	return b.arg
}

// opt is o's argument: NULL when o tells nothing.
func (b *box[T]) opt(o opt[T]) any {
	if !o.ok {
		return nil
	}
	return b.of(o.v)
}

func (r *attemptRow) size() int { return 128 + len(r.err) + len(r.response) }

func nonEmpty(s string) opt[string] {
	if s == "" {
		return opt[string]{}
	}
	return some(validUTF8(s))
}

func positive(v int64) opt[int64] {
	if v <= 0 {
		return opt[int64]{}
	}
	return some(v)
}

func nullableBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// validUTF8 keeps MySQL's utf8mb4 columns from refusing a whole batch over
// one bad byte sequence from a destination.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// truncateText makes s valid UTF-8 and at most MaxTextBytes long, cut at a
// rune boundary.
func truncateText(s string) string {
	s = validUTF8(s)
	if len(s) <= MaxTextBytes {
		return s
	}
	cut := MaxTextBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
