package main

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newIndexServerCommand) }

// newIndexServerCommand runs the index server alone in the foreground
// (tapir server runs it as part of the daemon); for tests, benchmarks and
// a recover-only host.
func newIndexServerCommand(g *globals) *cobra.Command {
	var file, listen string
	c := &cobra.Command{
		Use:    "index-server -c FILE [--listen ADDR]",
		Short:  "run only the index server (TCP 10082) in the foreground",
		Hidden: true,
		Args:   exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			log := g.logger(0)
			if !c.Flags().Changed("listen") && cfg.Server.IndexListen != "" {
				listen = cfg.Server.IndexListen
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("index server: %w", err)
			}
			log.Info("index server listening", "addr", ln.Addr().String())
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return server.ServeIndex(ctx, cfg, ln, log)
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&listen, "listen", ":10082", "address to listen on (default: [server] index_listen of the configuration)")
	return c
}
