package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
)

// Outbox is what the archiver needs from the live store: each shard's
// outbox stream, read through a consumer group.
type Outbox interface {
	// Shards is the number of shards.
	Shards() int
	// ReadOutbox returns up to count entries of a shard for consumer: its
	// own pending ones (read before, not acknowledged) or new ones.
	ReadOutbox(ctx context.Context, shard int, consumer string, pending bool, count int) ([]scheduler.Record, error)
	// ClaimOutbox takes over entries other consumers left unacknowledged
	// for longer than minIdle.
	ClaimOutbox(ctx context.Context, shard int, consumer string, minIdle time.Duration, count int) ([]scheduler.Record, error)
	// AckOutbox acknowledges archived records of a shard; finished events
	// among them start their retention window in Redis.
	AckOutbox(ctx context.Context, shard int, records []scheduler.Record) error
}

// ArchiveWriter is what the archiver needs from the archive database (see
// store/archive).
type ArchiveWriter interface {
	// Write stores a batch of records in one transaction, idempotently: the
	// same records written twice leave the same rows (no duplicates).
	Write(ctx context.Context, records []scheduler.Record) error
}

// Archiver defaults.
const (
	DefaultArchiveBatch        = 500
	DefaultArchivePollInterval = 200 * time.Millisecond
	DefaultArchiveClaimIdle    = 30 * time.Second
	DefaultArchiveFillWait     = 100 * time.Millisecond
	DefaultArchiveHoldCreates  = time.Second
)

// MaxArchiveDelay bounds HoldCreates + max(PollInterval, FillWait): the
// longest a create can wait in the outbox before the round that writes it
// begins. API.md promises that search sees a create within 2 s; the other
// 500 ms are for that round's reads and write.
const MaxArchiveDelay = 1500 * time.Millisecond

// ArchiverConfig configures an Archiver.
type ArchiverConfig struct {
	// Consumer names this archiver in the outbox consumer groups (the worker id). Required.
	Consumer string
	// Batch bounds the records written in one transaction. Defaults to 500.
	Batch int
	// PollInterval is how long an idle archiver waits before looking again. Defaults to 200ms.
	PollInterval time.Duration
	// FillWait is how long the archiver waits after a batch that was not
	// full before reading the next: under a steady load it writes fewer,
	// larger transactions, and a prompt delivery's create and final outcome
	// usually arrive in the same batch and are written as one row (the
	// archive's Write merges them), which roughly halves the archive's work
	// per delivery. The archive is that much later behind Redis. Defaults
	// to 100ms; negative: no wait.
	FillWait time.Duration
	// HoldCreates is how long a create entry of an event due within that
	// time is held back, read but neither written nor acknowledged, waiting
	// for a later record of its run (a prompt delivery's final outcome,
	// usually) so that the two are written as one archive row, not two; a
	// create whose hold runs out is written alone. Only entries read new
	// are held: not those read again after an error or a restart, nor those
	// taken over from another archiver. A held entry stays pending in the
	// consumer group, so a crash loses nothing; at shutdown the held creates
	// are written (or, when that fails, left pending). At most Batch
	// creates are held at once, each for at most ClaimIdle/2, so that
	// another archiver never takes one over as abandoned.
	//
	// The bound: a create is read within max(PollInterval, FillWait) of
	// entering the outbox (the archiver's sleep between rounds), held at
	// most HoldCreates, and written by the round that begins when its hold
	// runs out (the archiver wakes for it). HoldCreates + max(PollInterval,
	// FillWait) must therefore be at most MaxArchiveDelay (1.5s), which
	// leaves 0.5s of API.md's 2 s for that round's reads and write.
	// Bursts that make the archiver yield (YieldFor) delay creates beyond
	// it, with or without a hold. Defaults to 1s; negative: no hold.
	HoldCreates time.Duration
	// ClaimIdle: entries another archiver read but left unacknowledged this
	// long are taken over (it died mid-batch). Defaults to 30s.
	ClaimIdle time.Duration
	// Busy, when set, tells whether the process's deliveries are saturated
	// (a burst): the archiver then yields the CPU to them for up to
	// YieldFor before archiving anyway. Deliveries are due at their time;
	// the archive can be a moment behind (the outbox keeps everything).
	Busy func() bool
	// YieldFor bounds how long one busy period defers archiving. Defaults
	// to 2s; negative: never yield.
	YieldFor time.Duration
	// Clock times the archiver's claims of idle entries and its yielding.
	// Defaults to the system clock.
	Clock scheduler.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *scheduler.Metrics
	// OnFinal, when set, is given every batch's records before they are
	// written (callbacks.go in the api package creates the callbacks of
	// final records). An error leaves the batch in the outbox to be read
	// again, so OnFinal must be idempotent: it sees a record at least once.
	OnFinal func(ctx context.Context, recs []scheduler.Record) error
}

// DefaultArchiveYield is ArchiverConfig.YieldFor's default.
const DefaultArchiveYield = 2 * time.Second

// Archiver moves every shard's outbox into the archive database: read a
// batch through the consumer group, write it in one transaction, and only
// after the commit acknowledge it (which also starts the retention window
// of finished events in Redis). A crash between commit and acknowledgement
// re-delivers the batch, and the archive's idempotent writes absorb it. An
// unreachable archive leaves the entries pending: workers go on
// delivering, the outbox grows, and the archiver retries them first when
// the database is back. Every worker runs one; consumer groups share the
// work.
type Archiver struct {
	outbox  Outbox
	archive ArchiveWriter
	cfg     ArchiverConfig
	log     *slog.Logger
	hold    *createHold

	// Scratch space reused from round to round (one goroutine runs them).
	batch    []scheduler.Record
	holdable []bool // holdable[i]: batch[i] may be held
	seen     map[partKey]struct{}
	runs     map[runKey]int

	// open tracks the packed entries some of whose records are written
	// and others not yet (held creates, or a batch written in parts):
	// such an entry is acknowledged with its last record.
	open map[entryKey]*openEntry
}

// openEntry is a packed entry's records not yet written.
type openEntry struct {
	left    int
	written []bool // by part
}

// partKey names a record of an outbox entry.
type partKey struct {
	entryKey
	part int
}

func partOf(r *scheduler.Record) partKey {
	return partKey{entryKey{r.Shard, r.StreamID}, r.Part}
}

// entryKey names an outbox entry: stream ids are unique within a shard.
type entryKey struct {
	shard int
	id    string
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c ArchiverConfig) WithDefaults() ArchiverConfig {
	c.Batch = defaults.Positive(c.Batch, DefaultArchiveBatch)
	c.PollInterval = defaults.Positive(c.PollInterval, DefaultArchivePollInterval)
	c.ClaimIdle = defaults.Positive(c.ClaimIdle, DefaultArchiveClaimIdle)
	if c.FillWait == 0 {
		c.FillWait = DefaultArchiveFillWait
	}
	if c.HoldCreates == 0 {
		c.HoldCreates = DefaultArchiveHoldCreates
	}
	if c.YieldFor == 0 {
		c.YieldFor = DefaultArchiveYield
	}
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// MaxArchiveBatch bounds ArchiverConfig.Batch: one transaction must stay
// short enough not to hold the database's locks for long.
const MaxArchiveBatch = 10_000

// Validate reports the invalid fields of a config, after WithDefaults.
func (c ArchiverConfig) Validate() error {
	var errs []error
	if c.Consumer == "" {
		errs = append(errs, errors.New("archiver: Consumer is required"))
	}
	if c.Batch > MaxArchiveBatch {
		errs = append(errs, fmt.Errorf("archiver: Batch must be at most %d, not %d", MaxArchiveBatch, c.Batch))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("archiver: Batch must be positive, not %d", c.Batch))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("archiver: PollInterval must be positive, not %s", c.PollInterval))
	}
	if c.ClaimIdle <= 0 {
		errs = append(errs, fmt.Errorf("archiver: ClaimIdle must be positive, not %s", c.ClaimIdle))
	}
	if wait := max(c.PollInterval, c.FillWait); c.HoldCreates > 0 && c.HoldCreates+wait > MaxArchiveDelay {
		errs = append(errs, fmt.Errorf("archiver: HoldCreates (%s) plus the longer of PollInterval and FillWait (%s) must be at most %s, so that search sees a create within 2s",
			c.HoldCreates, wait, MaxArchiveDelay))
	}
	return errors.Join(errs...)
}

// NewArchiver returns an archiver. Run validates its config.
func NewArchiver(outbox Outbox, archive ArchiveWriter, cfg ArchiverConfig) *Archiver {
	cfg = cfg.WithDefaults()
	return &Archiver{outbox: outbox, archive: archive, cfg: cfg, log: cfg.Logger.With("archiver", cfg.Consumer),
		hold: newCreateHold(max(cfg.Batch, 1)), seen: map[partKey]struct{}{}, runs: map[runKey]int{},
		open: map[entryKey]*openEntry{}}
}

// holdFor is how long a create is held: HoldCreates, and at most half of
// ClaimIdle; 0 when creates are not held.
func (a *Archiver) holdFor() time.Duration {
	if a.cfg.HoldCreates <= 0 {
		return 0
	}
	return min(a.cfg.HoldCreates, a.cfg.ClaimIdle/2)
}

// Run archives until ctx ends. It returns at once with the error of an
// invalid config.
func (a *Archiver) Run(ctx context.Context) error {
	if err := a.cfg.Validate(); err != nil {
		return err
	}
	shards := a.outbox.Shards()
	start := rand.IntN(shards)
	backoff := a.cfg.PollInterval
	lastClaim := a.cfg.Clock.Now()
	// Pending entries of this consumer are retried before new ones; after a
	// restart under the same id it also picks up what it left behind.
	pending := make([]bool, shards)
	for i := range pending {
		pending[i] = true
	}
	defer a.flush(ctx)
	var busySince time.Time
	for ctx.Err() == nil {
		if a.yield(&busySince) {
			sleep(ctx, yieldPoll)
			continue
		}
		now := a.cfg.Clock.Now()
		claim := now.Sub(lastClaim) >= a.cfg.ClaimIdle/2
		if claim {
			lastClaim = now
		}
		n, err := a.round(ctx, start, pending, claim)
		start = (start + 1) % shards
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("archiving failed; entries stay in the outbox and are retried", "err", err, "retry_in", backoff)
			if a.cfg.Metrics != nil {
				a.cfg.Metrics.ArchiveErrors.Inc()
			}
			for i := range pending {
				pending[i] = true
			}
			// The held creates are pending entries too: the next rounds
			// read them again, with the rest (packed entries whole).
			a.hold.reset()
			clear(a.open)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
		case n == 0:
			backoff = a.cfg.PollInterval
			sleep(ctx, a.untilHeld(a.cfg.PollInterval))
		case n < a.cfg.Batch && a.cfg.FillWait > 0:
			backoff = a.cfg.PollInterval
			sleep(ctx, a.untilHeld(a.cfg.FillWait))
		default:
			backoff = a.cfg.PollInterval
		}
	}
	return nil
}

// untilHeld is d, or less when a held create's hold runs out sooner: the
// archiver wakes to write it.
func (a *Archiver) untilHeld(d time.Duration) time.Duration {
	if next, ok := a.hold.next(); ok {
		d = min(d, max(next.Sub(a.cfg.Clock.Now()), time.Millisecond))
	}
	return d
}

// flush writes the held creates when the archiver stops, so that search
// need not wait for a restart; if that fails they stay pending in the
// outbox (read again at the restart, or taken over after ClaimIdle).
func (a *Archiver) flush(ctx context.Context) {
	if a.hold.len() == 0 {
		return
	}
	batch := a.hold.takeAll(a.batch[:0])
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if err := a.commit(fctx, batch); err != nil {
		a.log.Warn("stopping: held creates not archived; they stay in the outbox", "count", len(batch), "err", err)
	}
	clear(batch)
}

// flushTimeout bounds how long a stopping archiver spends writing its held
// creates (a few hundred rows at most).
const flushTimeout = 2 * time.Second

// yieldPoll is how often a yielding archiver looks whether the burst is over.
const yieldPoll = 20 * time.Millisecond

// yield reports whether to skip archiving now: the deliveries are saturated
// and have been for less than YieldFor (busySince tracks the busy period).
func (a *Archiver) yield(busySince *time.Time) bool {
	if a.cfg.Busy == nil || a.cfg.YieldFor < 0 || !a.cfg.Busy() {
		*busySince = time.Time{}
		return false
	}
	if busySince.IsZero() {
		*busySince = a.cfg.Clock.Now()
	}
	return a.cfg.Clock.Now().Sub(*busySince) < a.cfg.YieldFor
}

// round gathers up to a batch from the shards (creates whose hold ran out
// first), holds back the creates that may yet meet another record of their
// run, writes the rest in one transaction, then acknowledges it shard by
// shard. It returns the number of records it took: those read and those
// released from the hold.
func (a *Archiver) round(ctx context.Context, start int, pending []bool, claim bool) (int, error) {
	shards := len(pending)
	now := a.cfg.Clock.Now()
	hold := a.holdFor()
	// Creates whose hold ran out are the oldest entries: first.
	batch := a.hold.takeExpired(now, a.batch[:0], a.cfg.Batch)
	holdable := a.holdable[:0]
	for range batch {
		holdable = append(holdable, false)
	}
	// An entry comes once per batch: after a long outage this archiver's
	// own pending entries are idle enough to be claimed (by itself) and
	// are read again as pending in the same round. Only such rounds need
	// the check; held creates count as taken.
	dedup := claim
	for sh := range pending {
		dedup = dedup || pending[sh]
	}
	if dedup {
		clear(a.seen)
		for _, e := range a.hold.entries {
			if !e.taken {
				a.seen[partOf(&e.rec)] = struct{}{}
			}
		}
		for i := range batch {
			a.seen[partOf(&batch[i])] = struct{}{}
		}
	}
	// Only creates read new may be held, and only those of events due
	// before the hold would run out: their outcome may come in time.
	holdUntil := now.Add(hold)
	add := func(recs []scheduler.Record, fresh bool) {
		for _, r := range recs {
			if dedup {
				k := partOf(&r)
				if _, ok := a.seen[k]; ok {
					continue
				}
				a.seen[k] = struct{}{}
			}
			batch = append(batch, r)
			holdable = append(holdable, fresh && hold > 0 && r.Kind == scheduler.RecordCreate &&
				r.Event != nil && !r.Event.DueAt.After(holdUntil))
		}
	}
	for i := 0; i < shards && len(batch) < a.cfg.Batch; i++ {
		sh := (start + i) % shards
		room := a.cfg.Batch - len(batch)
		var recs []scheduler.Record
		var err error
		if claim {
			recs, err = a.outbox.ClaimOutbox(ctx, sh, a.cfg.Consumer, a.cfg.ClaimIdle, room)
			if err != nil {
				return 0, err
			}
			if len(recs) > 0 {
				a.log.Info("took over outbox entries of a stopped archiver", "shard", sh, "count", len(recs))
			}
			add(recs, false)
			room = a.cfg.Batch - len(batch)
			if room <= 0 {
				break
			}
		}
		fresh := !pending[sh]
		recs, err = a.outbox.ReadOutbox(ctx, sh, a.cfg.Consumer, pending[sh], room)
		if err != nil {
			return 0, err
		}
		if pending[sh] && len(recs) < room {
			pending[sh] = false
		}
		add(recs, fresh)
	}
	taken := len(batch)
	batch = a.holdOrRelease(now.Add(hold), batch, holdable)
	a.holdable = holdable[:0]
	a.hold.compact()
	defer func() {
		// Drop the references to the records' events.
		clear(batch)
		a.batch = batch[:0]
	}()
	// Packed entries can make a round read more than a batch: written a
	// batch at a time, so that no transaction grows past one.
	for rest := batch; len(rest) > 0; {
		n := min(len(rest), a.cfg.Batch)
		if err := a.commit(ctx, rest[:n]); err != nil {
			return 0, err
		}
		rest = rest[n:]
	}
	return taken, nil
}

// holdOrRelease takes out of batch the creates to hold (holdable, and no
// other record of their run in the batch) and adds to it the held creates
// of the runs it has records of, while the batch has room; the others are
// written by the next round.
func (a *Archiver) holdOrRelease(deadline time.Time, batch []scheduler.Record, holdable []bool) []scheduler.Record {
	anyHoldable := false
	for _, h := range holdable {
		anyHoldable = anyHoldable || h
	}
	if !anyHoldable && a.hold.len() == 0 {
		return batch
	}
	if anyHoldable {
		clear(a.runs)
		for i := range batch {
			a.runs[runOf(&batch[i])]++
		}
		out := batch[:0]
		for i := range batch {
			if k := runOf(&batch[i]); holdable[i] && a.runs[k] == 1 && !a.hold.holds(k) && !a.hold.full() {
				a.hold.add(batch[i], deadline)
				continue
			}
			out = append(out, batch[i])
		}
		clear(batch[len(out):])
		batch = out
	}
	if a.hold.len() == 0 {
		return batch
	}
	for i, n := 0, len(batch); i < n; i++ {
		k := runOf(&batch[i])
		if !a.hold.holds(k) {
			continue
		}
		if len(batch) >= a.cfg.Batch {
			a.hold.expire(k)
			continue
		}
		r, _ := a.hold.take(k)
		batch = append(batch, r)
	}
	return batch
}

// lastOpen notes record r of a packed entry as written and reports
// whether the entry's records are all written now. A record written again
// (its entry read again) counts once.
func (a *Archiver) lastOpen(r *scheduler.Record) bool {
	k := entryKey{r.Shard, r.StreamID}
	o := a.open[k]
	if o == nil {
		o = &openEntry{left: r.Parts, written: make([]bool, r.Parts)}
		a.open[k] = o
	}
	if r.Part >= 0 && r.Part < len(o.written) && !o.written[r.Part] {
		o.written[r.Part] = true
		o.left--
	}
	if o.left > 0 {
		return false
	}
	delete(a.open, k)
	return true
}

// commit writes a batch in one transaction and acknowledges it.
func (a *Archiver) commit(ctx context.Context, batch []scheduler.Record) error {
	// valid and the shards' slices are the callees' to keep (a test's
	// writer may hold on to a batch): new ones for every commit.
	valid := make([]scheduler.Record, 0, len(batch))
	for _, r := range batch {
		if r.Kind == "" {
			a.log.Error("skipping an outbox entry that cannot be read", "shard", r.Shard, "entry", r.StreamID)
			continue
		}
		valid = append(valid, r)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if a.cfg.OnFinal != nil {
		// Before the write, so an archive that is down does not hold
		// callbacks back; the write's retry repeats them harmlessly.
		if err := a.cfg.OnFinal(wctx, valid); err != nil {
			return fmt.Errorf("on final: %w", err)
		}
	}
	if err := a.archive.Write(wctx, valid); err != nil {
		return err
	}
	var byShard [][]scheduler.Record
	for _, r := range batch {
		if r.Parts > 1 && !a.lastOpen(&r) {
			// Written, but the entry has records not yet written (held):
			// acknowledged with the last. The record still starts its
			// event's retention.
			r.StreamID = ""
		}
		if r.Shard >= len(byShard) {
			byShard = append(byShard, make([][]scheduler.Record, r.Shard+1-len(byShard))...)
		}
		byShard[r.Shard] = append(byShard[r.Shard], r)
	}
	// Acknowledging must not be cut short by shutdown once the batch is committed.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for sh, recs := range byShard {
		if len(recs) == 0 {
			continue
		}
		if err := a.outbox.AckOutbox(actx, sh, recs); err != nil {
			// Committed but not acknowledged: the entries come back and the
			// idempotent write absorbs them.
			return err
		}
	}
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.Archived.Add(float64(len(valid)))
	}
	return nil
}
