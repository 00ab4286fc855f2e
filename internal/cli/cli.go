// Package cli holds what the cassata command's cobra commands share: exit
// statuses (2 for bad usage: an unknown command or flag, a flag's bad
// value, a wrong argument count; 1 when the command failed; a command may
// name its own, as import does), the help that lists a command's
// environment variables, and Execute, which runs a command tree and turns
// its error into the exit status.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cassata/cassata/internal/config"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// StatusError is a command's error with the exit status it means. Silent:
// the command has told the user already.
type StatusError struct {
	Code   int
	Err    error
	Silent bool
}

func (e *StatusError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *StatusError) Unwrap() error { return e.Err }

// Usage is a usage error (exit status 2).
func Usage(err error) error { return &StatusError{Code: ExitUsage, Err: err} }

// Usagef is a usage error with a formatted message.
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// Exit is an exit status the command has reported already (nil for 0).
func Exit(code int) error {
	if code == ExitOK {
		return nil
	}
	return &StatusError{Code: code, Silent: true}
}

// RunE wraps a command's work: an error it returns is a failure (exit
// status 1) unless it carries its own status. Errors cobra returns itself
// (unknown commands and flags, argument counts) are usage errors.
func RunE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *StatusError
		if err != nil && !errors.As(err, &ee) {
			err = &StatusError{Code: ExitError, Err: err}
		}
		return err
	}
}

// NoArgs refuses arguments, for commands that take none.
func NoArgs(mode string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error { return config.NoArgs(mode, args) }
}

// BindConfig adds the configuration flags of mode to cmd (persistent
// flags, for a command whose subcommands take them too) and lists the
// environment variables in its --help.
func BindConfig(cmd *cobra.Command, mode string, persistent bool) *config.Flags {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.SortFlags = false
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[envAnnotation] = mode
	return config.BindFlags(fs, mode)
}

const envAnnotation = "cassata-env"

// helpTemplate is cobra's, with the environment variables of the
// command's settings after its flags.
const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}{{with envHelp .}}
Environment (a flag wins over its variable, a variable over the YAML file):
{{.}}{{end}}`

// Setup configures a root command: usage errors, help with environment
// variables, no usage dump after an error.
func Setup(root *cobra.Command) {
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return Usagef("%w (see %s --help)", err, cmd.CommandPath())
	})
	cobra.AddTemplateFunc("envHelp", envHelp)
	root.SetHelpTemplate(helpTemplate)
}

func envHelp(cmd *cobra.Command) string {
	for c := cmd; c != nil; c = c.Parent() {
		if mode, ok := c.Annotations[envAnnotation]; ok {
			return config.EnvHelp(mode)
		}
	}
	return ""
}

// Execute runs root with args and returns the exit status, writing an
// error to stderr as "cassata <command>: <error>".
func Execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(longFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if cmd == nil {
		cmd = root
	}
	var ee *StatusError
	if !errors.As(err, &ee) {
		// cobra's own: an unknown command, a wrong argument count.
		ee = &StatusError{Code: ExitUsage, Err: err}
	}
	if !ee.Silent {
		msg := ee.Error()
		if ee.Code == ExitUsage && !strings.Contains(msg, "--help") {
			msg += fmt.Sprintf(" (see %s --help)", cmd.CommandPath())
		}
		fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
	}
	return ee.Code
}

// longFlags rewrites Go's flag syntax, which cassata took before cobra
// (-listen :8085, -dry-run), to --listen: a single dash and a long flag's
// name. Only the flags' names are rewritten; anything after "--" is left.
func longFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && names[name] {
			out[i] = "-" + a
		}
	}
	return out
}
