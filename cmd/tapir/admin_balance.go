package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { adminCommands = append(adminCommands, newAdminBalanceCommand) }

func newAdminBalanceCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "balance -c FILE",
		Short: "expected full sizes per day of the coming cycle, against the balanced night, as a chart",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			return server.WriteBalance(c.Context(), os.Stdout, cfg, nil)
		},
	}
	addConfigFlag(c, &file)
	return c
}
