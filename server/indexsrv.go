package server

import (
	"context"
	"log/slog"
	"net"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/index/indexd"
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
	vols, err := VolumeSource(cfg, Deps{}, cat, log)
	if err != nil {
		return err
	}
	srv := &indexd.Server{Catalog: cat, TLS: tlsCfg, Log: log, Holding: holdingDisks(cfg), Volumes: vols}
	return srv.Serve(ctx, ln)
}
