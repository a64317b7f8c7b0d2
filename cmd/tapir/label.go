package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newLabelCommand) }

func newLabelCommand(g *globals) *cobra.Command {
	var file string
	var opt server.LabelOptions
	c := &cobra.Command{
		Use:   "label -c FILE LABEL [--slot N] [--force]",
		Short: "write a volume label (erases the volume); refuses a volume holding images or not ours unless --force",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opt.Label = args[0]
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			res, err := server.Label(ctx, cfg, opt, server.Deps{Log: g.logger(0)})
			if err != nil {
				return err
			}
			fmt.Printf("labelled %s in slot %d (it held %s)\n", res.Label.Label, res.Slot, res.Was)
			for _, d := range res.Dropped {
				fmt.Printf("  erased: %s:%s level %d of run %s\n", d.Host, d.Path, d.Level, d.Datestamp)
			}
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().IntVar(&opt.Slot, "slot", 0, "the slot to label (default: the volume in the drive, or slot 1)")
	c.Flags().BoolVar(&opt.Force, "force", false, "overwrite a volume that holds images or belongs to another configuration or program")
	return c
}
