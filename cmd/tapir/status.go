package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newStatusCommand) }

func newStatusCommand(g *globals) *cobra.Command {
	var file string
	var watch time.Duration
	var cancel bool
	c := &cobra.Command{
		Use:   "status -c FILE [--watch 2s] [--cancel]",
		Short: "show the night in progress: every DLE estimating, dumping (bytes, rate), waiting, taping or done",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			if cancel {
				st, err := server.Cancel(cfg, time.Now())
				if err != nil {
					return err
				}
				fmt.Printf("Asked run %s (pid %d) to end: no new dump starts, the dumps in flight finish onto the holding disk, and its report says who cancelled it.\n", st.Datestamp, st.PID)
				return nil
			}
			if watch > 0 {
				ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				tick := time.NewTicker(watch)
				defer tick.Stop()
				return server.Watch(ctx, cfg, os.Stdout, server.WatchOptions{Ticks: tick.C, Clear: true})
			}
			st, live, err := server.ReadStatus(cfg)
			if err != nil {
				return err
			}
			return server.WriteStatus(os.Stdout, st, live, time.Now())
		},
	}
	addConfigFlag(c, &file)
	c.Flags().DurationVar(&watch, "watch", 0, "refresh every interval; between nights, wait for the next one (Ctrl-C ends it)")
	c.Flags().BoolVar(&cancel, "cancel", false, "cancel the night in progress: it ends as on SIGTERM, keeping what was dumped")
	return c
}
