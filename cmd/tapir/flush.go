package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/server"
)

func newFlushCommand(g *globals) *cobra.Command {
	var file, format string
	c := &cobra.Command{
		Use:   "flush -c FILE [HOST [PATH]]",
		Short: "put the images earlier runs left on the holding disk onto a volume (amflush)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usageError{fmt.Errorf("at most HOST and PATH, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var opt server.FlushOptions
			if len(args) > 0 {
				opt.Host = args[0]
			}
			if len(args) > 1 {
				opt.Path = args[1]
			}
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
			if format == "text" {
				deps.Out = os.Stdout
			}
			rep, err := server.Flush(ctx, cfg, opt, deps)
			return printJSON(format, rep, err)
		},
	}
	addConfigFlag(c, &file)
	addFormatFlag(c, &format)
	return c
}
