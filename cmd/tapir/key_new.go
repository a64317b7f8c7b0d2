package main

import (
	"time"

	"github.com/spf13/cobra"
)

func newKeyNewCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "new FILE",
		Short: "make an age identity in FILE (mode 0600, never overwritten) and print its recipient",
		Long: `Makes an X25519 age identity and writes it to FILE (mode 0600) as age-keygen
does, so that ` + "`age -d -i FILE`" + ` reads it. An existing FILE is never overwritten.
Prints the recipient (age1…) to put in a dumptype's recipients, its fingerprint (what
image headers name) and what to do next: keep FILE away from the backup server, print
the paper key (` + "`tapir key paper FILE`" + `) and keep it in a safe.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runKeyNew(args[0], time.Now(), c.OutOrStdout())
		},
	}
}
