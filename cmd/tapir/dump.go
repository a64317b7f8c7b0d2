package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/server"
)

func newDumpCommand(g *globals) *cobra.Command {
	var file, format string
	c := &cobra.Command{
		Use:   "dump -c FILE [--format text|json] [HOST [DISK...]]",
		Short: "run one backup night now: dump every DLE (or only HOST's, or only its DISKs) to holding, tape it, report",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := checkFormat(format); err != nil {
				return err
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			deps := server.Deps{Log: g.logger(0), Clock: clock.Real}
			if len(args) > 0 {
				sub, note, err := server.Subset(cfg, args[0], args[1:])
				if err != nil {
					return usageError{err}
				}
				cfg, deps.Subset = sub, note
			}
			if format == "text" {
				deps.Out = os.Stdout
			}
			rep, err := server.Dump(ctx, cfg, deps)
			return printJSON(format, rep, err)
		},
	}
	addConfigFlag(c, &file)
	addFormatFlag(c, &format)
	return c
}
