package main

import "github.com/spf13/cobra"

func init() { adminCommands = append(adminCommands, newAdminCatalogCommand) }

// catalogCommands are the subcommands of `tapir admin catalog`; each
// registers itself from its own file, admin_catalog_<name>.go.
var catalogCommands []func(*globals) *cobra.Command

// newAdminCatalogCommand is `tapir admin catalog`, the commands that act on
// the catalog as a whole (moving it to another database).
func newAdminCatalogCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "catalog",
		Short: "act on the catalog as a whole: copy it to a new SQLite file or PostgreSQL database",
	}
	for _, mk := range catalogCommands {
		c.AddCommand(mk(g))
	}
	return c
}
