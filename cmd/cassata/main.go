// Command cassata runs the Cassata HTTP request scheduler: `dev` (everything
// in one process on embedded defaults), `server` (JSON API), `worker`
// (delivery), and the admin commands. See API.md §1 and the README's
// configuration reference; internal/config's Settings define the flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cassata/cassata/internal/appcli"
	"github.com/cassata/cassata/internal/cli"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/internal/legacyimport"
	"github.com/cassata/cassata/internal/server"
	"github.com/cassata/cassata/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run runs the command line args and returns the exit status: 0 done, 1
// failed, 2 bad usage (import has its own, see its --help).
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal starts a graceful shutdown; a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	return cli.Execute(ctx, rootCommand(os.Stdout, os.Stderr), args, os.Stderr)
}

func rootCommand(stdout io.Writer, stderr *os.File) *cobra.Command {
	root := &cobra.Command{
		Use:   "cassata",
		Short: "cassata: a Redis-backed HTTP request scheduler",
		Long: `cassata: a Redis-backed HTTP request scheduler.

Configuration: flags > environment > YAML file (--config / CASSATA_CONFIG) >
defaults. "cassata <command> --help" lists a command's flags and variables.`,
		Version: shortVersion(),
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					return cli.Usagef("unknown command %q; did you mean %s?", args[0], strings.Join(s, " or "))
				}
				return cli.Usagef("unknown command %q", args[0])
			}
			cmd.SetOut(stderr)
			_ = cmd.Help()
			return cli.Usagef("a command is required")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2
	cli.Setup(root)

	worker := runCommand(server.ModeWorker, "worker", "Claim due events, deliver them, recover leases, archive (run many)")
	worker.AddCommand(alias(runCommand(server.ModeWorker, "start", "Alias of cassata worker, kept from the original Cassata CLI")))
	service := &cobra.Command{
		Use: "service", Short: "The original Cassata CLI's service command: cassata service start is cassata server",
		Hidden: true, Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("a subcommand is required: cassata service start runs cassata server")
			}
			return cli.Usagef("unknown service subcommand %q: cassata service start runs cassata server", args[0])
		},
	}
	service.AddCommand(alias(runCommand(server.ModeServer, "start", "Alias of cassata server, kept from the original Cassata CLI")))

	root.AddCommand(
		runCommand(server.ModeDev, "dev", "Everything in one process on embedded defaults: in-memory Redis (not durable), SQLite archive, API and UI on 127.0.0.1:8085"),
		runCommand(server.ModeServer, "server", "JSON API and admin UI (stateless; run many)"),
		worker,
		service,
		migrateCommand(),
		appcli.Command(stdout),
		legacyimport.Command(stdout, stderr),
		versionCommand(stdout),
		healthcheckCommand(stdout),
	)
	return root
}

// alias marks a command kept from the original CLI.
func alias(cmd *cobra.Command) *cobra.Command {
	cmd.Hidden = true
	return cmd
}

// runCommand is dev, server or worker (named use: an alias is "start").
func runCommand(mode, use, short string) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cli.NoArgs(mode)}
	flags := cli.BindConfig(cmd, mode, false)
	cmd.RunE = cli.RunE(func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		log := cfg.SetupLogging()
		return server.Run(cmd.Context(), mode, cfg, log)
	})
	return cmd
}

func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Create or upgrade the archive tables, then exit", Args: cli.NoArgs(config.ModeMigrate)}
	compact := cmd.Flags().Bool("compact-events", false,
		"also switch the namespace to this release's Redis layout: compact events, packed outbox entries and header codes (for a namespace made before it; run it once every process runs this release or later)")
	flags := cli.BindConfig(cmd, config.ModeMigrate, false)
	cmd.RunE = cli.RunE(func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		return server.Migrate(cmd.Context(), cfg, cfg.SetupLogging(), server.MigrateOptions{CompactEvents: *compact})
	})
	return cmd
}

func versionCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use: "version", Short: "Print the version and commit of this binary (--verbose: its build too)", Args: cli.NoArgs("version"),
	}
	verbose := cmd.Flags().Bool("verbose", false, "also the build date, Go version and platform")
	cmd.Run = func(*cobra.Command, []string) {
		if *verbose {
			fmt.Fprintln(stdout, version.Get().String())
			return
		}
		fmt.Fprintln(stdout, shortVersion())
	}
	return cmd
}

// shortVersion is "cassata <version> <commit>", as API.md §10 has it.
func shortVersion() string {
	v := version.Get()
	commit := v.Commit
	if v.Modified {
		commit += "-dirty"
	}
	return "cassata " + v.Version + " " + commit
}

func healthcheckCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe this machine's cassata process (for a container's HEALTHCHECK): exit 0 when it answers 200",
		Long: `Probes a cassata process on this machine, for a container's HEALTHCHECK
(the image has no shell or curl): GET http://127.0.0.1:<port>/healthz, or
/readyz with --ready, the port of --listen / CASSATA_LISTEN. Exit status 0
when it answers 200 within --timeout, else 1 with what went wrong.`,
		Args: cli.NoArgs(config.ModeHealthcheck),
	}
	ready := cmd.Flags().Bool("ready", false, "probe /readyz (dependencies reachable) instead of /healthz (alive)")
	timeout := cmd.Flags().Duration("timeout", cli.DefaultHealthcheckTimeout, "how long to wait for the answer")
	flags := cli.BindConfig(cmd, config.ModeHealthcheck, false)
	cmd.RunE = cli.RunE(func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		path := "/healthz"
		if *ready {
			path = "/readyz"
		}
		msg, err := cli.Healthcheck(cmd.Context(), cfg.Listen, path, *timeout)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, msg)
		return nil
	})
	return cmd
}
