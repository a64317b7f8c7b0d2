package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
)

func newConfigCommand(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "work with configuration files"}
	var file string
	check := &cobra.Command{
		Use:   "check -c FILE",
		Short: "validate a configuration and print it with every default filled in; warn about a rotation of volumes too short for one chain per DLE",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			if err := cfg.Effective(os.Stdout); err != nil {
				return err
			}
			// Warnings go to stderr and leave the exit status 0: the
			// configuration is valid, tapir runs with it.
			for _, w := range config.ChainWarnings(cfg) {
				fmt.Fprintf(os.Stderr, "tapir: %s: warning: %s\n", cfg.File, w)
			}
			return nil
		},
	}
	addConfigFlag(check, &file)
	c.AddCommand(check)
	return c
}

func addConfigFlag(c *cobra.Command, file *string) {
	c.Flags().StringVarP(file, "config", "c", "/etc/tapir/tapir.toml", "configuration file")
}
