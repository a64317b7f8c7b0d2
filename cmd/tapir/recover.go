package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/recover"
)

func newRecoverCommand(g *globals) *cobra.Command {
	var file string
	var req recover.Request
	c := &cobra.Command{
		Use:   "recover -c FILE --host H --path P --file F --to DIR",
		Short: "restore one file from the newest image that holds it",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			for _, f := range []struct{ name, v string }{{"host", req.Host}, {"path", req.Path}, {"file", req.File}, {"to", req.To}} {
				if f.v == "" {
					return usageError{fmt.Errorf("--%s is required", f.name)}
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			res, err := recover.File(ctx, cfg, req, g.logger(0))
			if err != nil {
				return err
			}
			fmt.Printf("restored %s (%d bytes) from the level %d image of %s, volume %s file %d\n",
				res.Written, res.Size, res.Dump.Level, res.Dump.Datestamp, res.Volume, res.FileNo)
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&req.Host, "host", "", "the DLE's host")
	c.Flags().StringVar(&req.Path, "path", "", "the DLE's path")
	c.Flags().StringVar(&req.File, "file", "", "the file: absolute, or relative to the DLE's path")
	c.Flags().StringVar(&req.To, "to", "", "directory to restore into (the file keeps its path below the DLE)")
	c.Flags().StringVar(&req.AsOf, "date", "", "restore as of this datestamp (YYYYMMDDhhmmss), default newest")
	c.Flags().BoolVar(&req.Overwrite, "overwrite", false, "replace an existing local file")
	return c
}
