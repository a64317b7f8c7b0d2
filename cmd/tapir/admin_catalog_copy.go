package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { catalogCommands = append(catalogCommands, newAdminCatalogCopyCommand) }

func newAdminCatalogCopyCommand(g *globals) *cobra.Command {
	var file, from, to string
	c := &cobra.Command{
		Use:   "copy -c FILE [--from DSN|PATH] --to DSN|PATH",
		Short: "copy the catalog into a new PostgreSQL database or SQLite file, and verify the copy table by table",
		Long: `copy reads the catalog of the configuration and writes every row into a new,
empty catalog: a postgres:// DSN of a new database, or the name of a new SQLite
file. The copy is one transaction (a failure leaves nothing behind) and is
verified afterwards: every table must have the same number of rows and the
same SHA-256 in both. The run lock is held meanwhile, so a night cannot
write the catalog during the copy. The old catalog is left as it is; switch
the configuration's catalog to the copy afterwards (docs/format/catalog.md,
"Moving a catalog"). Put the PostgreSQL password in PGPASSWORD or ~/.pgpass
rather than in the DSN.

--from copies another catalog instead of the configuration's, one no night
uses: the file of tapir admin rebuild --out, to put a rebuilt catalog into a
new PostgreSQL database.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if to == "" {
				return usageError{fmt.Errorf("--to is required: a postgres:// DSN of a new database or the name of a new SQLite file")}
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			_, err = server.CopyCatalog(c.Context(), cfg, from, to, os.Stdout, g.logger(0))
			return err
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&from, "from", "", "copy this catalog (a `PATH` or DSN no night uses, e.g. written by admin rebuild --out) instead of the configuration's")
	c.Flags().StringVar(&to, "to", "", "where the copy goes: a postgres:// `DSN` of a new database, or the path of a new SQLite file")
	return c
}
