package server

import (
	"context"
	"log/slog"
	"net"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// ServeIndex runs the index and restore server of cfg on ln until ctx
// ends (a ListenFunc for the daemon; `tapir index-server` runs it alone).
// It opens its own catalog connection and, for a disk changer, its own
// changer: loading a slot for a restore never unloads the volume the taper
// is writing.
func ServeIndex(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
	tlsCfg, err := wire.ServerConfig(wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		return err
	}
	cat, err := index.Open(cfg.Catalog)
	if err != nil {
		return err
	}
	defer cat.Close()
	srv := &indexd.Server{Catalog: cat, TLS: tlsCfg, Log: log, Holding: holdingDisks(cfg)}
	if cfg.Changer.Type == "disk" {
		tt := cfg.Tapetype()
		ch, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), log)
		if err != nil {
			return err
		}
		srv.Volumes = &indexd.DiskVolumes{Changer: ch, Catalog: cat}
	}
	return srv.Serve(ctx, ln)
}
