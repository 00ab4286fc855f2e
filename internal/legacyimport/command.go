// Package legacyimport is the `cassata import` command: it moves an
// original Cassata's MySQL database (store/legacy reads it) into Redis and
// the archive, and reports what it did and what it could not import.
package legacyimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/cassata/cassata/internal/cli"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/legacy"
	"github.com/cassata/cassata/store/redisstore"
)

// Long is the command's help text.
const Long = `Moves an original Cassata database (_saas_events, _saas_eventlog) into this
Cassata: PENDING and PROCESSING rows become live events due at their expiry,
finished rows go to the archive with their event logs as history. The source
is only read. Idempotent and resumable: run it again after an interruption.

  cassata import --from mysql://user:pass@host:3306/db [--dry-run] [--page-size N] [flags]
  cassata import --config <original config file>      [--dry-run] [--page-size N] [flags]

--from also takes the original's jdbc:mysql://host:port/db?user=..&password=..
--config reads the source from the file's database section (url, user,
password); the file configures the destination too, as for "cassata server".
The destination is the usual configuration: CASSATA_REDIS_URL,
CASSATA_ARCHIVE_DSN (finished events and the import's ledger), ...

Exit status: 0 everything imported (or done before); 3 finished, but some
rows were invalid for Cassata and skipped (listed on stdout); 1 stopped by
an error (run again to resume); 2 bad usage.`

// Exit statuses of cassata import.
const (
	ExitOK      = cli.ExitOK
	ExitError   = cli.ExitError
	ExitUsage   = cli.ExitUsage
	ExitInvalid = 3
)

// importFlags are the import command's own flags; the others are the
// configuration's.
type importFlags struct {
	from       string
	dryRun     bool
	pageSize   int
	configPath string
}

// Command is `cassata import`. The report (invalid rows, the summary)
// goes to stdout; logs and, when stderr is a terminal, a progress line go
// to stderr. Its error carries the exit status (cli.StatusError).
func Command(stdout io.Writer, stderr *os.File) *cobra.Command {
	var fl importFlags
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Move an original Cassata's MySQL database over (--from DSN or --config FILE)",
		Long:  Long,
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&fl.from, "from", "", "the original's database: mysql://user:pass@host:3306/db or jdbc:mysql://...")
	cmd.Flags().BoolVar(&fl.dryRun, "dry-run", false, "count what the import would do; write nothing")
	cmd.Flags().IntVar(&fl.pageSize, "page-size", legacy.DefaultPageSize, "source rows read per page (1 to 5000)")
	cfgFlags := cli.BindConfig(cmd, config.ModeImport, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if fl.pageSize < 1 || fl.pageSize > 5000 {
			return cli.Usagef("--page-size: want a number from 1 to 5000, not %d", fl.pageSize)
		}
		fl.configPath = cfgFlags.ConfigPath()
		cfg, err := cfgFlags.Load()
		if err != nil {
			return cli.Usage(err)
		}
		return cli.Exit(run(cmd.Context(), cfg, fl, stdout, stderr))
	}
	return cmd
}

// Run runs "cassata import args..." and returns its exit status.
func Run(ctx context.Context, args []string, stdout io.Writer, stderr *os.File) int {
	cmd := Command(stdout, stderr)
	cli.Setup(cmd)
	cmd.SetOut(stdout)
	return cli.Execute(ctx, cmd, args, stderr)
}

func run(ctx context.Context, cfg config.Config, fl importFlags, stdout io.Writer, stderr *os.File) int {
	log := cfg.SetupLogging()
	srcDSN, err := importSource(fl, log)
	if err != nil {
		fmt.Fprintf(stderr, "cassata import: %v (see cassata import --help)\n", err)
		return ExitUsage
	}
	if cfg.ArchiveDSN == "" {
		fmt.Fprintln(stderr, "cassata import: CASSATA_ARCHIVE_DSN (or --archive-dsn) is required: finished events and the import's ledger are kept there")
		return ExitUsage
	}
	progress := newProgressLine(stderr, isatty.IsTerminal(stderr.Fd()) || isatty.IsCygwinTerminal(stderr.Fd()))
	sum, err := runImport(ctx, cfg, fl, srcDSN, log, stdout, progress)
	progress.clear()
	if sum != nil {
		printImportSummary(stdout, *sum)
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "cassata import: %v\n", err)
		return ExitError
	case sum.Invalid > 0:
		return ExitInvalid
	}
	return ExitOK
}

// importSource is the source DSN: --from (mysql:// or the original's
// jdbc:mysql:// URL), else the database section of --config.
func importSource(fl importFlags, log *slog.Logger) (string, error) {
	switch {
	case fl.from != "" && strings.HasPrefix(fl.from, "jdbc:"):
		dsn, dropped, err := config.JDBCArchiveDSN(fl.from, config.JDBCCredentials{})
		if err != nil {
			return "", fmt.Errorf("--from: %w", err)
		}
		if len(dropped) > 0 {
			log.Warn("--from: JDBC parameters with no meaning here were dropped", "params", dropped)
		}
		return dsn, nil
	case fl.from != "":
		return fl.from, nil
	case fl.configPath != "":
		return config.OriginalDatabaseDSN(fl.configPath)
	}
	return "", errors.New("name the original's database: --from mysql://user:pass@host:3306/db, or --config with the original's config file")
}

// runImport wires the source, the archive and (unless a dry run) Redis,
// and runs the import. The summary is nil when the run did not start.
func runImport(ctx context.Context, cfg config.Config, fl importFlags, srcDSN string, log *slog.Logger, stdout io.Writer, progress *progressLine) (*legacy.Summary, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	src, err := legacy.OpenSource(octx, srcDSN)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	log.Info("import source", "dsn", src.String(), "event_log", src.HasEventLog())
	if ok, err := src.EventLogIndexed(octx); err == nil && !ok {
		log.Warn("_saas_eventlog has no index on _saas_events_id: every page scans the whole event log (the original creates idx_events_id)")
	}
	var arch *archive.Store
	if fl.dryRun && sqliteMissing(cfg.ArchiveDSN) {
		// Opening would create the file: a dry run writes nothing, and an
		// archive that does not exist has no ledger to read.
		log.Info("the archive does not exist yet: nothing was imported before", "dsn", archive.RedactDSN(cfg.ArchiveDSN))
	} else {
		if arch, err = archive.Open(octx, cfg.ArchiveDSN); err != nil {
			return nil, err // names the (redacted) DSN already
		}
		log.Info("archive", "dsn", archive.RedactDSN(cfg.ArchiveDSN))
		defer arch.Close()
	}
	if sameDatabase(srcDSN, cfg.ArchiveDSN) {
		log.Warn("the archive is the source database: Cassata's tables (events, attempts, legacy_imports, schema_migrations) " +
			"are created beside the original's, whose _saas_* tables are only read")
	}

	icfg := legacy.Config{
		Archive: arch, Limits: scheduler.Limits{MaxBodyBytes: cfg.MaxBodyBytes}, Guard: cfg.Guard(),
		PageSize: fl.pageSize, DryRun: fl.dryRun, Logger: log,
		OnInvalid: func(iv legacy.Invalid) {
			progress.clear()
			column := iv.Column
			if column == "" {
				column = "-"
			}
			fmt.Fprintf(stdout, "invalid\tid=%d\tapplication=%q\tevent_id=%q\tcolumn=%s\t%s\n", iv.SourceID, iv.App, iv.EventID, column, iv.Reason)
		},
		OnProgress: progress.show,
	}

	rdb, err := redisstore.Dial(cfg.RedisConn())
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	if fl.dryRun {
		// Reachable is all a dry run asks of Redis: opening the store
		// would record the namespace's shard count, a write.
		if err := rdb.Ping(octx).Err(); err != nil {
			return nil, fmt.Errorf("redis at %s: %w", redisstore.RedactURL(cfg.RedisURL), err)
		}
	} else {
		store, err := redisstore.New(octx, rdb, redisstore.Config{Namespace: cfg.Namespace, Shards: cfg.Shards, Retention: cfg.Retention})
		if err != nil {
			return nil, fmt.Errorf("redis at %s: %w", redisstore.RedactURL(cfg.RedisURL), err)
		}
		if _, err := store.Check(octx, cfg.AllowEviction, log); err != nil {
			return nil, err
		}
		if cfg.CreateTables {
			// Under the workers' migration lock; the ledger table comes with
			// the archive's migrations.
			if err := store.WithLock(octx, "migrate", time.Minute, arch.Migrate); err != nil {
				return nil, err
			}
		}
		icfg.Scheduler = scheduler.New(store, scheduler.Config{Archive: arch, Guard: icfg.Guard, Limits: icfg.Limits})
	}
	im, err := legacy.New(icfg)
	if err != nil {
		return nil, err
	}
	sum, err := im.Run(ctx, src)
	return &sum, err
}

// sqliteMissing reports whether dsn names a SQLite file that does not exist.
func sqliteMissing(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "sqlite" && u.Scheme != "sqlite3") {
		return false
	}
	path := u.Opaque
	if path == "" {
		path = u.Host + u.Path
	}
	_, err = os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// sameDatabase reports whether two mysql:// DSNs name the same database.
func sameDatabase(a, b string) bool {
	ca, err := archive.MySQLConfig(a)
	if err != nil {
		return false
	}
	cb, err := archive.MySQLConfig(b)
	if err != nil {
		return false
	}
	return ca.Addr == cb.Addr && ca.DBName == cb.DBName
}

func printImportSummary(w io.Writer, s legacy.Summary) {
	if s.DryRun {
		fmt.Fprintf(w, "dry run, nothing written: %d rows read (source ids up to %d)\n", s.Rows, s.LastID)
		fmt.Fprintf(w, "  would import live:      %d\n", s.Live)
		fmt.Fprintf(w, "  would archive:          %d (%d event log rows as attempts)\n", s.Archived, s.Attempts)
		fmt.Fprintf(w, "  skipped, done before:   %d\n", s.Done)
		fmt.Fprintf(w, "  invalid, skipped:       %d\n", s.Invalid)
		return
	}
	fmt.Fprintf(w, "import: %d rows read (source ids up to %d)\n", s.Rows, s.LastID)
	fmt.Fprintf(w, "  imported live:          %d\n", s.Live)
	fmt.Fprintf(w, "  archived:               %d (%d event log rows as attempts)\n", s.Archived, s.Attempts)
	fmt.Fprintf(w, "  skipped, done before:   %d\n", s.Done)
	fmt.Fprintf(w, "  invalid, skipped:       %d\n", s.Invalid)
}

// progressLine keeps one line of progress on a terminal, rewritten at most
// every progressEvery; it does nothing when the output is not a terminal.
type progressLine struct {
	w     io.Writer
	on    bool
	mu    sync.Mutex
	last  time.Time
	shown bool
}

const progressEvery = 200 * time.Millisecond

func newProgressLine(w io.Writer, terminal bool) *progressLine {
	return &progressLine{w: w, on: terminal}
}

func (p *progressLine) show(pr legacy.Progress) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < progressEvery {
		return
	}
	p.last = time.Now()
	pct := 100.0
	if pr.MaxID > 0 {
		pct = min(100, 100*float64(pr.LastID)/float64(pr.MaxID))
	}
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(pr.Rows) / s
	}
	verb := "imported"
	if pr.DryRun {
		verb = "would import"
	}
	fmt.Fprintf(p.w, "\r\033[Kimport: %.0f%% (id %d of %d) · %d rows · %s %d live, %d archived · %d done before · %d invalid · %.0f rows/s",
		pct, pr.LastID, pr.MaxID, pr.Rows, verb, pr.Live, pr.Archived, pr.Done, pr.Invalid, rate)
	p.shown = true
}

// clear erases the progress line, before other output and at the end.
func (p *progressLine) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
