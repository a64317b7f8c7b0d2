package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
)

type globals struct {
	logLevel string
}

// extraCommands and adminCommands let a subcommand's file register itself
// (func init() { extraCommands = append(extraCommands, newXCommand) }), so
// that adding a subcommand touches only its own file.
var extraCommands, adminCommands []func(*globals) *cobra.Command

// usageError marks errors that should exit 2.
type usageError struct{ error }

func main() {
	root := newRootCommand(&globals{})
	stopProfile := startProfile()
	err := root.Execute()
	stopProfile()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapir: %v\n", err)
		os.Exit(exitCode(err))
	}
}

// newRootCommand is the whole command tree; main executes it, the man page
// generator and its test walk it.
func newRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "tapir",
		Short: "tapir backs up many hosts every night onto tape or virtual tapes",
		Long: `tapir backs up many hosts every night onto tape or virtual tapes.

The backup server runs "tapir server -c /etc/tapir/tapir.toml"; every host
that is backed up runs the agent, "tapir client". Every other subcommand is a
tool for the administrator or for a restore.

Exit status: 0 success; 1 failure, with a one-line reason on stderr; 2 bad
usage or a bad configuration (file:line: what is wrong).

The guide, the restore shell and every format: /usr/share/doc/tapir/ (from the
package) or docs/ in the source.`,
		Version:       versionLine(readBuildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --version prints the same line as `tapir version`.
	root.SetVersionTemplate("tapir {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn, error (default info; warn for demo)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newCACommand(g),
		newConfigCommand(g),
		newClientCommand(g),
		newDumpCommand(g),
		newFlushCommand(g),
		newRecoverCommand(g),
		newDemoCommand(g),
		newAdminCommand(g),
	)
	for _, mk := range extraCommands {
		root.AddCommand(mk(g))
	}
	return root
}

func exitCode(err error) int {
	var ce *config.Error
	var ue usageError
	switch {
	case errors.As(err, &ce), errors.As(err, &ue):
		return 2
	}
	return 1
}

// logger builds the operational log on stderr.
func (g *globals) logger(def slog.Level) *slog.Logger {
	lvl := def
	if g.logLevel != "" {
		if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
			lvl = def
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// exactArgs is cobra.ExactArgs with an exit status of 2.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
