package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { adminCommands = append(adminCommands, newAdminRmvolumeCommand) }

func newAdminRmvolumeCommand(g *globals) *cobra.Command {
	var file string
	var opt server.RmVolumeOptions
	c := &cobra.Command{
		Use:   "rmvolume -c FILE LABEL [--erase] [--yes]",
		Short: "make the catalog forget a volume and every image on it (without --yes, only shows what would be lost)",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opt.Label = args[0]
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			res, err := server.RemoveVolume(ctx, cfg, opt, server.Deps{Log: g.logger(0)})
			if res != nil {
				if werr := server.WriteRemoveVolume(os.Stdout, res); err == nil {
					err = werr
				}
			}
			if err != nil {
				return err
			}
			if !opt.Yes {
				return errors.New("nothing was changed: run again with --yes to remove it")
			}
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().BoolVar(&opt.Erase, "erase", false, "also erase the volume's tape files (virtual tapes only), once the catalog has forgotten it")
	c.Flags().BoolVar(&opt.Yes, "yes", false, "really remove it")
	return c
}
