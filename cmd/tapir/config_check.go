package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
)

func newConfigCommand(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "work with configuration files"}
	var file string
	check := &cobra.Command{
		Use:   "check -c FILE",
		Short: "validate a configuration and print it with every default filled in",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			return cfg.Effective(os.Stdout)
		},
	}
	addConfigFlag(check, &file)
	c.AddCommand(check)
	return c
}

func addConfigFlag(c *cobra.Command, file *string) {
	c.Flags().StringVarP(file, "config", "c", "/etc/tapir/tapir.toml", "configuration file")
}
