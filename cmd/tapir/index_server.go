package main

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
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
			tlsCfg, err := wire.ServerConfig(wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
			if err != nil {
				return err
			}
			cat, err := index.Open(cfg.Catalog)
			if err != nil {
				return err
			}
			defer cat.Close()
			srv := &indexd.Server{Catalog: cat, TLS: tlsCfg, Log: log}
			for _, h := range cfg.Holding {
				srv.Holding = append(srv.Holding, h.Path)
			}
			if cfg.Changer.Type == "disk" {
				tt := cfg.Tapetype()
				ch, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), log)
				if err != nil {
					return err
				}
				srv.Volumes = &indexd.DiskVolumes{Changer: ch, Catalog: cat}
			}
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
			return srv.Serve(ctx, ln)
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&listen, "listen", ":10082", "address to listen on (default: [server] index_listen of the configuration)")
	return c
}
