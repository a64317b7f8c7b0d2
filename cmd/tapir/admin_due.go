package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { adminCommands = append(adminCommands, newAdminDueCommand) }

func newAdminDueCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "due -c FILE",
		Short: "days until each DLE's next full, overdue ones first",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			return server.WriteDue(c.Context(), os.Stdout, cfg, nil)
		},
	}
	addConfigFlag(c, &file)
	return c
}
