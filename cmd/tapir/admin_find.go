package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report/admin"
	"github.com/tapir-backup/tapir/server"
)

func init() { adminCommands = append(adminCommands, newAdminFindCommand) }

func newAdminFindCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "find -c FILE HOST [PATH]",
		Short: "list every image of a host (or of one DLE): date, level, status, volume, tape file, part, size",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("want HOST [PATH], got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cat, err := openCatalog(file)
			if err != nil {
				return err
			}
			defer cat.Close()
			path := ""
			if len(args) == 2 {
				path = args[1]
			}
			return admin.Find(c.Context(), os.Stdout, cat, args[0], path)
		},
	}
	addConfigFlag(c, &file)
	return c
}

// openCatalog opens the catalog of the configuration in file.
func openCatalog(file string) (*catalog.Catalog, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	return server.OpenCatalog(cfg)
}
