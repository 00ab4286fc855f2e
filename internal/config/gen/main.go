// Command gen writes the configuration reference (config.Reference, from
// config.Settings) into the README between its markers:
//
//	go run ./internal/config/gen [-readme README.md]
//
// go generate ./internal/config runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/cassata/cassata/internal/config"
)

func main() {
	readme := flag.String("readme", "README.md", "the README to update")
	flag.Parse()
	if err := run(*readme); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := config.ReplaceReference(string(data))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if out == string(data) {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
