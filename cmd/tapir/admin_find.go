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
	var file, name string
	var limit int
	c := &cobra.Command{
		Use:   "find -c FILE HOST [PATH] | find -c FILE HOST PATH --name PATTERN [--limit N]",
		Short: "list every image of a host (or of one DLE), or with --name every version of the files named PATTERN in all the DLE's images",
		Long: `Without --name: every image of HOST (or of the DLE HOST PATH): date, level,
status, volume, tape file, part, size.

With --name PATTERN: every version of the files of the DLE HOST PATH whose
name matches the shell pattern (* ? [...], case-sensitive; a pattern with a
'/' matches the whole path from the DLE root), in all the DLE's images
whatever their date or chain, deleted files too: path, date, level, status,
type, size, modification time and image id, by path then oldest first. At
most --limit lines (default 1000, 0 for all).`,
		Args: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("name") {
				if len(args) != 2 {
					return usageError{fmt.Errorf("--name wants HOST PATH (the DLE), got %d arguments", len(args))}
				}
				if name == "" {
					return usageError{fmt.Errorf("--name wants a pattern, such as 'passwd' or '*.conf'")}
				}
				if limit < 0 {
					return usageError{fmt.Errorf("--limit %d is negative; give 0 for no limit", limit)}
				}
				return nil
			}
			if c.Flags().Changed("limit") {
				return usageError{fmt.Errorf("--limit goes with --name")}
			}
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
			if c.Flags().Changed("name") {
				return admin.Versions(c.Context(), os.Stdout, cat, args[0], path, name, limit)
			}
			return admin.Find(c.Context(), os.Stdout, cat, args[0], path)
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&name, "name", "", "list every version of the files whose name matches this shell pattern, in all the DLE's images")
	c.Flags().IntVar(&limit, "limit", 1000, "with --name: at most this many versions (0: all)")
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
