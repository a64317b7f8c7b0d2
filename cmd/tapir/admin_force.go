package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() {
	adminCommands = append(adminCommands,
		func(g *globals) *cobra.Command { return newAdminForceCommand(g, true) },
		func(g *globals) *cobra.Command { return newAdminForceCommand(g, false) })
}

func newAdminForceCommand(g *globals, on bool) *cobra.Command {
	var file string
	use, short := "force", "dump HOST (or one DLE of it) at level 0 in the next run"
	if !on {
		use, short = "unforce", "take back a `tapir admin force` that has not run yet"
	}
	c := &cobra.Command{
		Use:   use + " -c FILE HOST [PATH]",
		Short: short,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("give HOST and, optionally, the DLE's PATH")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			path := ""
			if len(args) == 2 {
				path = args[1]
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			dles, err := server.Force(c.Context(), cfg, args[0], path, on)
			if err != nil {
				return err
			}
			for _, d := range dles {
				if on {
					fmt.Printf("%s:%s will get a full dump in the next run\n", d.Host, d.Path)
				} else {
					fmt.Printf("%s:%s is no longer forced\n", d.Host, d.Path)
				}
			}
			return nil
		},
	}
	addConfigFlag(c, &file)
	return c
}
