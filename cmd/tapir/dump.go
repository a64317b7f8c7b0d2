package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func newDumpCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "dump -c FILE",
		Short: "run one backup night now: dump every DLE to holding, tape it, report",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			_, err = server.Dump(ctx, cfg, server.Deps{Log: g.logger(0), Clock: server.SystemClock{}, Out: os.Stdout})
			return err
		},
	}
	addConfigFlag(c, &file)
	return c
}
