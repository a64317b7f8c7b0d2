package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/report/admin"
)

func init() { adminCommands = append(adminCommands, newAdminInfoCommand) }

func newAdminInfoCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "info -c FILE HOST PATH",
		Short: "show the history of a DLE with average sizes, dump rates and compression",
		Args:  exactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cat, err := openCatalog(file)
			if err != nil {
				return err
			}
			defer cat.Close()
			return admin.Info(c.Context(), os.Stdout, cat, args[0], args[1])
		},
	}
	addConfigFlag(c, &file)
	return c
}
