package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/store/archive"
)

// DefaultPageSize is how many source rows a page holds (and so how many
// events one CreateMany round trip and one archive transaction carry).
const DefaultPageSize = 500

// Scheduler is what the import needs from the domain (*scheduler.Scheduler):
// creating live events with its validation, SSRF guard and dedup, and
// finding an event live or archived.
type Scheduler interface {
	CreateMany(ctx context.Context, items []scheduler.BatchItem) error
	Get(ctx context.Context, app, id string) (*scheduler.Event, error)
}

// Config configures an Importer.
type Config struct {
	// Scheduler creates the live events. Required unless DryRun.
	Scheduler Scheduler
	// Archive receives the finished rows and holds the ledger. Required,
	// but for a dry run against an archive that does not exist yet (then
	// nothing was imported before).
	Archive *archive.Store
	// Limits and Guard are the destination's create-time checks (the
	// Scheduler's own), applied before anything is written so that a dry
	// run reports what a real run would. Limits defaults to
	// scheduler.Limits defaults; a nil Guard allows every destination
	// (CASSATA_BLOCK_PRIVATE=off).
	Limits scheduler.Limits
	Guard  *delivery.AddressGuard
	// PageSize is the number of source rows per page. Defaults to 500.
	PageSize int
	// PageBytes bounds the bytes of one page. Defaults to 16 MiB.
	PageBytes int
	// DryRun reads and judges everything and writes nothing.
	DryRun bool
	// Clock tells the time (ledger timestamps, zero-date expiries).
	// Defaults to scheduler.SystemClock.
	Clock scheduler.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnInvalid is called for every row skipped as invalid, as found.
	OnInvalid func(Invalid)
	// OnProgress is called after every page.
	OnProgress func(Progress)
}

// Summary counts what a run did (or, in a dry run, would do).
type Summary struct {
	// Rows read from the source.
	Rows int64
	// Live: rows created as live events (PENDING, PROCESSING).
	Live int64
	// Archived: finished rows written to the archive; Attempts: their
	// event log rows.
	Archived int64
	Attempts int64
	// Done: rows skipped because an earlier run brought them over (or
	// Cassata already had the very same event).
	Done int64
	// Invalid: rows Cassata cannot take, reported through OnInvalid.
	Invalid int64
	// LastID is the highest source id handled.
	LastID int64
	DryRun bool
}

// Progress is reported after every page.
type Progress struct {
	Summary
	// MaxID is the source's highest id when the run began.
	MaxID   int64
	Elapsed time.Duration
}

// Importer moves an original Cassata database into Cassata. See doc.go.
type Importer struct {
	cfg    Config
	conv   converter
	ledger *ledger
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.PageBytes == 0 {
		c.PageBytes = DefaultPageBytes
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field of a config, after WithDefaults.
func (c Config) Validate() error {
	if c.Archive == nil && !c.DryRun {
		return errors.New("import: an archive is required (CASSATA_ARCHIVE_DSN): finished events and the import ledger live there")
	}
	if c.Scheduler == nil && !c.DryRun {
		return errors.New("import: a scheduler is required")
	}
	if c.PageSize < 0 || c.PageBytes < 0 {
		return errors.New("import: page size and bytes must not be negative")
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("import: Limits: %w", err)
	}
	return nil
}

// New returns an Importer for cfg.
func New(cfg Config) (*Importer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	im := &Importer{cfg: cfg, conv: converter{limits: cfg.Limits, guard: cfg.Guard, now: cfg.Clock.Now}}
	if cfg.Archive != nil {
		im.ledger = newLedger(cfg.Archive)
	}
	return im, nil
}

// Run imports every row of src, page by page in id order. It returns the
// summary so far with any error; an interrupted run is resumed by running
// again (the ledger skips what is done). The archive must be migrated
// (Archive.Migrate) unless DryRun.
func (im *Importer) Run(ctx context.Context, src *Source) (Summary, error) {
	sum := Summary{DryRun: im.cfg.DryRun}
	log := im.cfg.Logger
	start := time.Now()
	maxID, err := src.MaxID(ctx)
	if err != nil {
		return sum, err
	}
	useLedger := im.ledger != nil
	if useLedger && im.cfg.DryRun {
		// A dry run must not create the table: without it nothing was
		// imported before.
		if useLedger, err = im.ledger.exists(ctx); err != nil {
			return sum, err
		}
	}
	log.Info("import started", "source", src.String(), "max_id", maxID, "dry_run", im.cfg.DryRun,
		"page_size", im.cfg.PageSize)
	for {
		page, err := src.Page(ctx, sum.LastID, im.cfg.PageSize, im.cfg.Limits.MaxBodyBytes, im.cfg.PageBytes)
		if err != nil {
			return sum, im.stopped(ctx, sum, err)
		}
		if len(page) == 0 {
			break
		}
		if err := im.page(ctx, page, useLedger, &sum); err != nil {
			return sum, im.stopped(ctx, sum, err)
		}
		sum.LastID = page[len(page)-1].ID
		log.Debug("import page", "last_id", sum.LastID, "rows", len(page))
		if im.cfg.OnProgress != nil {
			im.cfg.OnProgress(Progress{Summary: sum, MaxID: maxID, Elapsed: time.Since(start)})
		}
	}
	log.Info("import finished", "rows", sum.Rows, "live", sum.Live, "archived", sum.Archived,
		"attempts", sum.Attempts, "done_before", sum.Done, "invalid", sum.Invalid, "dry_run", sum.DryRun,
		"elapsed", time.Since(start).Round(time.Millisecond).String())
	return sum, nil
}

// stopped wraps the error that ended a run, saying how to go on.
func (im *Importer) stopped(ctx context.Context, sum Summary, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if im.cfg.DryRun {
		return fmt.Errorf("import (dry run) stopped after source id %d: %w", sum.LastID, err)
	}
	return fmt.Errorf("import stopped after source id %d (run it again to resume; what is done stays done): %w", sum.LastID, err)
}

// page handles one page: judge every row, skip what the ledger has,
// archive the finished rows, create the live ones.
func (im *Importer) page(ctx context.Context, rows []Row, useLedger bool, sum *Summary) error {
	plans := make([]plan, 0, len(rows))
	seen := make(map[scheduler.Ident]bool, len(rows))
	var idents []scheduler.Ident
	for i := range rows {
		p := im.conv.convert(&rows[i])
		if p.invalid == nil && seen[p.ident] {
			// The original's unique key compares without case or
			// trailing spaces; Cassata's identities are exact bytes, so
			// this cannot happen with the original's schema. Checked
			// anyway: two rows must never share one ledger entry.
			p.invalid = &Invalid{SourceID: p.row.ID, App: p.ident.App, EventID: p.ident.ID, Reason: "the same identity as an earlier row"}
		}
		if p.invalid == nil {
			seen[p.ident] = true
			idents = append(idents, p.ident)
		}
		plans = append(plans, p)
	}
	sum.Rows += int64(len(rows))

	states := map[scheduler.Ident]string{}
	if useLedger && len(idents) > 0 {
		var err error
		if states, err = im.ledger.lookup(ctx, idents); err != nil {
			return err
		}
	}

	var finished, live, unsure []*plan
	for i := range plans {
		p := &plans[i]
		switch {
		case p.invalid != nil:
			im.report(sum, *p.invalid)
		case states[p.ident] == stateLive || states[p.ident] == stateArchived:
			sum.Done++
		case states[p.ident] == stateCreating:
			unsure = append(unsure, p)
		case p.live:
			live = append(live, p)
		default:
			finished = append(finished, p)
		}
	}

	if err := im.archive(ctx, finished, sum); err != nil {
		return err
	}
	more, err := im.settle(ctx, unsure, sum)
	if err != nil {
		return err
	}
	return im.create(ctx, append(live, more...), sum)
}

func (im *Importer) report(sum *Summary, iv Invalid) {
	sum.Invalid++
	im.cfg.Logger.Debug("import: invalid row", "source_id", iv.SourceID, "app", iv.App, "event_id", iv.EventID,
		"column", iv.Column, "reason", iv.Reason)
	if im.cfg.OnInvalid != nil {
		im.cfg.OnInvalid(iv)
	}
}

// archive writes the finished rows' records in one archive transaction,
// then records them in the ledger.
func (im *Importer) archive(ctx context.Context, plans []*plan, sum *Summary) error {
	if len(plans) == 0 {
		return nil
	}
	var attempts int64
	for _, p := range plans {
		attempts += int64(len(p.records) - 1)
	}
	if im.cfg.DryRun {
		sum.Archived += int64(len(plans))
		sum.Attempts += attempts
		return nil
	}
	var records []scheduler.Record
	entries := make([]ledgerEntry, 0, len(plans))
	now := im.cfg.Clock.Now().UnixMilli()
	for _, p := range plans {
		records = append(records, p.records...)
		entries = append(entries, ledgerEntry{ident: p.ident, sourceID: p.row.ID, sourceStatus: string(p.status), state: stateArchived, atMS: now})
	}
	if err := im.cfg.Archive.Write(ctx, records); err != nil {
		return fmt.Errorf("archive finished rows: %w", err)
	}
	if err := im.ledger.record(ctx, entries); err != nil {
		return err
	}
	sum.Archived += int64(len(plans))
	sum.Attempts += attempts
	return nil
}

// settle resolves identities an interrupted run left "creating": when
// Cassata has the event (live, or archived after its delivery) the create
// happened and is recorded; otherwise the row is created again (returned).
func (im *Importer) settle(ctx context.Context, plans []*plan, sum *Summary) ([]*plan, error) {
	if im.cfg.DryRun {
		// Either it exists or it would be created: one live event each.
		return plans, nil
	}
	var again []*plan
	var entries []ledgerEntry
	now := im.cfg.Clock.Now().UnixMilli()
	for _, p := range plans {
		_, err := im.cfg.Scheduler.Get(ctx, p.ident.App, p.ident.ID)
		switch {
		case errors.Is(err, scheduler.ErrNotFound):
			if p.live {
				again = append(again, p)
				continue
			}
			// The row finished in the original since the interrupted run
			// meant to create it: archive it instead.
			if err := im.ledger.forget(ctx, []scheduler.Ident{p.ident}); err != nil {
				return nil, err
			}
			if err := im.archive(ctx, []*plan{p}, sum); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("check %s/%s: %w", p.ident.App, p.ident.ID, err)
		default:
			entries = append(entries, ledgerEntry{ident: p.ident, sourceID: p.row.ID, sourceStatus: string(p.status), state: stateLive, atMS: now})
		}
	}
	if err := im.ledger.record(ctx, entries); err != nil {
		return nil, err
	}
	sum.Live += int64(len(entries))
	return again, nil
}

// create makes the live rows live events with one CreateMany, between a
// write-ahead ledger intent and the ledger's record of the outcome.
func (im *Importer) create(ctx context.Context, plans []*plan, sum *Summary) error {
	if len(plans) == 0 {
		return nil
	}
	if im.cfg.DryRun {
		sum.Live += int64(len(plans))
		return nil
	}
	now := im.cfg.Clock.Now().UnixMilli()
	intents := make([]ledgerEntry, len(plans))
	items := make([]scheduler.BatchItem, len(plans))
	for i, p := range plans {
		intents[i] = ledgerEntry{ident: p.ident, sourceID: p.row.ID, sourceStatus: string(p.status), state: stateCreating, atMS: now}
		items[i] = scheduler.BatchItem{Event: p.event}
	}
	if err := im.ledger.intend(ctx, intents); err != nil {
		return err
	}
	if err := im.cfg.Scheduler.CreateMany(ctx, items); err != nil {
		return fmt.Errorf("create live events: %w", err)
	}
	var done []ledgerEntry
	var refused []scheduler.Ident
	var created, replayed int64
	for i, it := range items {
		p := plans[i]
		switch {
		case it.Err == nil:
			e := intents[i]
			e.state = stateLive
			done = append(done, e)
			if it.Created {
				created++
			} else {
				replayed++ // Cassata had this very event already
			}
		case errors.Is(it.Err, scheduler.ErrUnavailable):
			return fmt.Errorf("create %s/%s: %w", p.ident.App, p.ident.ID, it.Err)
		default:
			refused = append(refused, p.ident)
			iv := *invalidFrom(p.row, it.Err)
			if errors.Is(it.Err, scheduler.ErrDuplicate) {
				iv.Column, iv.Reason = "", "Cassata already has an event with this identity and a different request"
			}
			im.report(sum, iv)
		}
	}
	if err := im.ledger.record(ctx, done); err != nil {
		return err
	}
	if err := im.ledger.forget(ctx, refused); err != nil {
		return err
	}
	sum.Live += created
	sum.Done += replayed
	return nil
}
