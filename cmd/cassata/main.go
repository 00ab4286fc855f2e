// Command cassata runs the Cassata HTTP request scheduler: `dev` (everything
// in one process on embedded defaults), `server` (JSON API), `worker`
// (delivery). See API.md §1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cassata/cassata/internal/appcli"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/internal/legacyimport"
	"github.com/cassata/cassata/internal/server"
)

const usage = `cassata: a Redis-backed HTTP request scheduler

usage:
  cassata dev       everything in one process, embedded Redis (not durable)
  cassata server    JSON API (stateless; run many)
  cassata worker    claim, deliver, recover, archive (run many)
  cassata migrate   create or upgrade the archive tables
  cassata apps      create, list and rotate applications (API keys, signing secrets)
  cassata import    move an original Cassata's MySQL database over (--from DSN or --config FILE)
  cassata service start / cassata worker start   aliases of the original CLI
  cassata version

Run "cassata <command> -h" for its flags.`

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	// Aliases kept from the original Cassata CLI.
	if len(rest) > 0 && rest[0] == "start" && (cmd == "service" || cmd == "worker") {
		rest = rest[1:]
		if cmd == "service" {
			cmd = "server"
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal starts a graceful shutdown; a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	var err error
	switch cmd {
	case server.ModeDev, server.ModeServer, server.ModeWorker:
		var cfg config.Config
		if cfg, _, err = config.Load(cmd, rest); err == nil {
			log := cfg.NewLogger()
			slog.SetDefault(log)
			err = server.Run(ctx, cmd, cfg, log)
		}
	case "migrate":
		var cfg config.Config
		if cfg, _, err = config.Load("migrate", rest); err == nil {
			err = server.Migrate(ctx, cfg, cfg.NewLogger())
		}
	case "apps":
		err = appcli.Run(ctx, rest, os.Stdout)
	case "import":
		// Its own exit statuses: 3 when some rows were invalid (see legacyimport.Usage).
		return legacyimport.Run(ctx, rest, os.Stdout, os.Stderr)
	case "version", "--version":
		fmt.Println("cassata", version)
		return 0
	case "help", "-h", "--help":
		fmt.Println(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "cassata: unknown command %q\n\n%s\n", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cassata:", err)
		return 1
	}
	return 0
}
