package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { adminCommands = append(adminCommands, newAdminHoldingCommand) }

func newAdminHoldingCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "holding",
		Short: "list or delete the images waiting on the holding disks",
	}
	var file string
	list := &cobra.Command{
		Use:   "list -c FILE",
		Short: "list every image on the holding disks: run, DLE, level, size, and whether it waits for a volume, is damaged or partial",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			ims, err := server.HoldingList(c.Context(), cfg)
			if err != nil {
				return err
			}
			usage, err := server.HoldingUsage(cfg)
			if err != nil {
				return err
			}
			return server.WriteHoldingList(os.Stdout, ims, usage)
		},
	}
	addConfigFlag(list, &file)

	var sel server.HoldingSelect
	var yes bool
	del := &cobra.Command{
		Use:   "delete -c FILE (HOST [PATH [DATESTAMP]] | --file FILE) [--yes]",
		Short: "delete images from the holding disks; they will never reach a volume (without --yes, only shows what would go)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 3 || (len(args) == 0 && sel.File == "") || (len(args) > 0 && sel.File != "") {
				return usageError{fmt.Errorf("give HOST [PATH [DATESTAMP]] or --file FILE")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			for i, p := range []*string{&sel.Host, &sel.Path, &sel.Datestamp} {
				if i < len(args) {
					*p = args[i]
				}
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			ims, err := server.HoldingDelete(c.Context(), cfg, sel, !yes, g.logger(0))
			for _, im := range ims {
				verb := "deleted"
				if !yes {
					verb = "would delete"
				}
				state := im.State
				if len(im.CopyOn) > 0 {
					state += ", kept on its copy on " + strings.Join(im.CopyOn, ", ")
				}
				fmt.Printf("%s %s (%s %s:%s level %d, %s)\n", verb, im.Path, im.Datestamp, im.Host, im.DLE, im.Level, state)
			}
			if err != nil {
				return err
			}
			if !yes {
				return fmt.Errorf("nothing deleted: an image that is on no volume (any state but taped) is lost when deleted; run again with --yes to delete")
			}
			return nil
		},
	}
	addConfigFlag(del, &file)
	del.Flags().StringVar(&sel.File, "file", "", "the holding file to delete (its first chunk)")
	del.Flags().BoolVar(&yes, "yes", false, "really delete")
	c.AddCommand(list, del)
	return c
}
