package main

import "github.com/spf13/cobra"

// newAdminCommand is the parent of the administrative subcommands (in the
// spirit of amadmin); each registers itself in adminCommands from its own
// file, admin_<name>.go.
func newAdminCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "admin",
		Short: "inspect and adjust the catalog, the holding disk and the schedule",
	}
	for _, mk := range adminCommands {
		c.AddCommand(mk(g))
	}
	return c
}
