package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/demo"
	"github.com/tapir-backup/tapir/internal/clock"
)

func newDemoCommand(g *globals) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "demo",
		Short: "run a complete backup night on virtual tapes under ./var/demo (no root, loopback only)",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, demo.Options{Dir: dir, Log: g.logger(slog.LevelWarn), Out: os.Stdout, Clock: clock.Real})
		},
	}
	c.Flags().StringVar(&dir, "dir", "var/demo", "directory for the whole demo site")
	return c
}
