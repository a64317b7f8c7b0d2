package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newPlanCommand) }

func newPlanCommand(g *globals) *cobra.Command {
	var file string
	var explain bool
	c := &cobra.Command{
		Use:   "plan -c FILE [--explain]",
		Short: "show tonight's plan: the level of every DLE (asks the agents for estimates; dumps nothing)",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			sc, err := server.PlanTonight(ctx, cfg, server.Deps{Log: g.logger(slog.LevelWarn)})
			if err != nil {
				return err
			}
			if explain {
				return sc.Explain(os.Stdout)
			}
			for _, e := range sc.Entries {
				fb := ""
				if e.Fallback >= 0 {
					fb = fmt.Sprintf(" (fallback %d)", e.Fallback)
				}
				fmt.Printf("%s:%s level %d%s\n", e.Host, e.Path, e.Level, fb)
			}
			for _, s := range sc.Skipped {
				fmt.Printf("%s:%s not dumped: %s\n", s.Host, s.Path, s.Reason)
			}
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().BoolVar(&explain, "explain", false, "give the reason of every decision, the delayed fulls and the totals against the tapes")
	return c
}
