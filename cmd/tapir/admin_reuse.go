package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() {
	adminCommands = append(adminCommands,
		func(g *globals) *cobra.Command { return newAdminReuseCommand(g, true) },
		func(g *globals) *cobra.Command { return newAdminReuseCommand(g, false) })
}

func newAdminReuseCommand(g *globals, reuse bool) *cobra.Command {
	var file string
	use, short := "reuse", "mark volumes reusable again (they rejoin the rotation once out of tapecycle)"
	if !reuse {
		use, short = "no-reuse", "mark volumes never to be overwritten (retired: out of the rotation, their images kept)"
	}
	c := &cobra.Command{
		Use:   use + " -c FILE LABEL...",
		Short: short,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("give the label of at least one volume")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			changes, err := server.SetReuse(c.Context(), cfg, args, reuse)
			if werr := server.WriteReuse(os.Stdout, changes); err == nil {
				err = werr
			}
			return err
		},
	}
	addConfigFlag(c, &file)
	return c
}
