package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { extraCommands = append(extraCommands, newManCommand) }

// newManCommand writes one man page (section 1) per visible command into a
// directory; scripts/deb calls it. Hidden: people read the pages, they do
// not make them.
func newManCommand(g *globals) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "write the man pages of every command into DIR (tapir.1, tapir-dump.1, ...)",
		Hidden: true,
		Args:   exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			if dir == "" {
				return usageError{fmt.Errorf("man: --dir DIR is required")}
			}
			if err := writeManPages(c.Root(), dir); err != nil {
				return fmt.Errorf("man pages into %s: %w", dir, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory to write the pages into (created if missing)")
	return c
}

// writeManPages generates the pages of root and every visible command
// below it. The date is SOURCE_DATE_EPOCH when set (reproducible
// packages), else today; pages carry no "auto generated" footer.
func writeManPages(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	root.InitDefaultVersionFlag()                   // cobra adds it only to the command it executes
	version, _, _ := strings.Cut(root.Version, ",") // the module version alone
	return doc.GenManTree(root, &doc.GenManHeader{
		Section: "1",
		Source:  "tapir " + version,
		Manual:  "tapir manual",
	}, dir)
}
